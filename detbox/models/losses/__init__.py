"""Losses; all follow the weight / reduction / ``avg_factor`` rule in ``losses.utils``."""

from detbox.models.losses.cross_entropy_loss import CrossEntropyLoss
from detbox.models.losses.focal_loss import FocalLoss
from detbox.models.losses.regression_losses import (
    BalancedL1Loss,
    GIoULoss,
    L1Loss,
    SmoothL1Loss,
)
from detbox.models.losses.utils import labels_to_one_hot, reduce_loss

__all__ = [
    "BalancedL1Loss",
    "CrossEntropyLoss",
    "FocalLoss",
    "GIoULoss",
    "L1Loss",
    "SmoothL1Loss",
    "labels_to_one_hot",
    "reduce_loss",
]
