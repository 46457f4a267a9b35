"""Small task units the heads compose: anchors and points, assigners, samplers, box coders,
NMS."""

from detbox.models.task_modules.anchor_generator import AnchorGenerator
from detbox.models.task_modules.approx_assigner import ApproxMaxIoUAssigner
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
from detbox.models.task_modules.grid_point_coder import GridPointCoder
from detbox.models.task_modules.hard_negatives import hard_negative_mask
from detbox.models.task_modules.nms import NMS, SoftNMS, batched_soft_nms, build_nms, soft_nms
from detbox.models.task_modules.point_assigners import (
    FCOSAssigner,
    FoveaAssigner,
    PointAssigner,
    points_in_boxes,
)
from detbox.models.task_modules.point_generator import PointGenerator
from detbox.models.task_modules.prior_box_generator import SSDPriorGenerator
from detbox.models.task_modules.samplers import IoUBalancedNegSampler, OHEMSampler, RandomSampler

__all__ = [
    "BACKGROUND",
    "IGNORED",
    "NMS",
    "ATSSAssigner",
    "AnchorGenerator",
    "ApproxMaxIoUAssigner",
    "AssignResult",
    "DeltaXYWHBoxCoder",
    "DistancePointBoxCoder",
    "FCOSAssigner",
    "FoveaAssigner",
    "GridPointCoder",
    "IoUBalancedNegSampler",
    "MaxIoUAssigner",
    "OHEMSampler",
    "PointAssigner",
    "PointGenerator",
    "RandomSampler",
    "SSDPriorGenerator",
    "SoftNMS",
    "batched_soft_nms",
    "box_iof",
    "box_to_distances",
    "build_nms",
    "hard_negative_mask",
    "points_in_boxes",
    "soft_nms",
]
