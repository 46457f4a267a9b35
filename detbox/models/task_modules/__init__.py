"""Small task units the heads compose: anchors, assigners, samplers, box coders."""

from detbox.models.task_modules.anchor_generator import AnchorGenerator
from detbox.models.task_modules.approx_assigner import ApproxMaxIoUAssigner
from detbox.models.task_modules.assigners import (
    BACKGROUND,
    IGNORED,
    AssignResult,
    MaxIoUAssigner,
    box_iof,
)
from detbox.models.task_modules.box_coders import DeltaXYWHBoxCoder
from detbox.models.task_modules.point_assigner import PointAssigner
from detbox.models.task_modules.samplers import RandomSampler

__all__ = [
    "BACKGROUND",
    "IGNORED",
    "AnchorGenerator",
    "ApproxMaxIoUAssigner",
    "AssignResult",
    "DeltaXYWHBoxCoder",
    "MaxIoUAssigner",
    "PointAssigner",
    "RandomSampler",
    "box_iof",
]
