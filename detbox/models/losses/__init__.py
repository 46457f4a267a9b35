"""Losses; all follow the weight / reduction / ``avg_factor`` rule in ``losses.utils``."""

from detbox.models.losses.cross_entropy_loss import CrossEntropyLoss
from detbox.models.losses.focal_loss import FocalLoss
from detbox.models.losses.gfl_losses import DistributionFocalLoss, QualityFocalLoss
from detbox.models.losses.regression_losses import (
    GIoULoss,
    IoULoss,
    L1Loss,
    SmoothL1Loss,
    aligned_iou,
)
from detbox.models.losses.utils import labels_to_one_hot, reduce_loss

__all__ = [
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
