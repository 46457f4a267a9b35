"""Small task units the heads compose: anchors, assigners, samplers, box coders."""

from detbox.models.task_modules.anchor_generator import AnchorGenerator
from detbox.models.task_modules.assigners import (
    BACKGROUND,
    IGNORED,
    AssignResult,
    MaxIoUAssigner,
    box_iof,
)
from detbox.models.task_modules.box_coders import DeltaXYWHBoxCoder
from detbox.models.task_modules.hard_negatives import hard_negative_mask
from detbox.models.task_modules.prior_box_generator import SSDPriorGenerator
from detbox.models.task_modules.samplers import RandomSampler

__all__ = [
    "BACKGROUND",
    "IGNORED",
    "AnchorGenerator",
    "AssignResult",
    "DeltaXYWHBoxCoder",
    "MaxIoUAssigner",
    "RandomSampler",
    "SSDPriorGenerator",
    "box_iof",
    "hard_negative_mask",
]
