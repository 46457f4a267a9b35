"""Small task units the heads compose: anchors, assigners, samplers, box coders, NMS."""

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
from detbox.models.task_modules.grid_point_coder import GridPointCoder
from detbox.models.task_modules.hard_negatives import hard_negative_mask
from detbox.models.task_modules.nms import NMS, SoftNMS, batched_soft_nms, build_nms, soft_nms
from detbox.models.task_modules.point_assigner import PointAssigner
from detbox.models.task_modules.prior_box_generator import SSDPriorGenerator
from detbox.models.task_modules.samplers import IoUBalancedNegSampler, OHEMSampler, RandomSampler

__all__ = [
    "BACKGROUND",
    "IGNORED",
    "NMS",
    "AnchorGenerator",
    "ApproxMaxIoUAssigner",
    "AssignResult",
    "DeltaXYWHBoxCoder",
    "GridPointCoder",
    "IoUBalancedNegSampler",
    "MaxIoUAssigner",
    "OHEMSampler",
    "PointAssigner",
    "RandomSampler",
    "SSDPriorGenerator",
    "SoftNMS",
    "batched_soft_nms",
    "box_iof",
    "build_nms",
    "hard_negative_mask",
    "soft_nms",
]
