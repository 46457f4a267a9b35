"""Small task units the heads compose: anchors and points, assigners, samplers, box coders."""

from detbox.models.task_modules.anchor_generator import AnchorGenerator
from detbox.models.task_modules.assigners import (
    BACKGROUND,
    IGNORED,
    AssignResult,
    MaxIoUAssigner,
    box_iof,
)
from detbox.models.task_modules.atss_assigner import ATSSAssigner
from detbox.models.task_modules.box_coders import (
    DeltaXYWHBoxCoder,
    DistancePointBoxCoder,
    box_to_distances,
)
from detbox.models.task_modules.point_assigners import (
    FCOSAssigner,
    FoveaAssigner,
    points_in_boxes,
)
from detbox.models.task_modules.point_generator import PointGenerator
from detbox.models.task_modules.samplers import RandomSampler

__all__ = [
    "ATSSAssigner",
    "BACKGROUND",
    "IGNORED",
    "AnchorGenerator",
    "AssignResult",
    "DeltaXYWHBoxCoder",
    "DistancePointBoxCoder",
    "FCOSAssigner",
    "FoveaAssigner",
    "MaxIoUAssigner",
    "PointGenerator",
    "RandomSampler",
    "box_iof",
    "box_to_distances",
    "points_in_boxes",
]
