"""Losses; all follow the weight / reduction / ``avg_factor`` rule in ``losses.utils`` except
the GHM losses, which normalize by their own count of valid elements."""

from detbox.models.losses.bounded_iou_loss import BoundedIoULoss
from detbox.models.losses.cross_entropy_loss import CrossEntropyLoss
from detbox.models.losses.focal_loss import FocalLoss
from detbox.models.losses.gfl_losses import DistributionFocalLoss, QualityFocalLoss
from detbox.models.losses.ghm_loss import GHMC, GHMR
from detbox.models.losses.regression_losses import (
    BalancedL1Loss,
    GIoULoss,
    IoULoss,
    L1Loss,
    SmoothL1Loss,
    aligned_iou,
)
from detbox.models.losses.utils import labels_to_one_hot, reduce_loss

__all__ = [
    "GHMC",
    "GHMR",
    "BalancedL1Loss",
    "BoundedIoULoss",
    "CrossEntropyLoss",
    "DistributionFocalLoss",
    "FocalLoss",
    "GIoULoss",
    "IoULoss",
    "L1Loss",
    "QualityFocalLoss",
    "SmoothL1Loss",
    "aligned_iou",
    "labels_to_one_hot",
    "reduce_loss",
]
