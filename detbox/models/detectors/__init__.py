"""Detectors: compose backbone, neck and heads; ``loss()`` and ``predict()`` on an ImageBatch."""

from detbox.models.detectors.base import BaseDetector, rescale_to_original
from detbox.models.detectors.cascade_rcnn import CascadeRCNN
from detbox.models.detectors.fast_rcnn import FastRCNN
from detbox.models.detectors.grid_rcnn import GridRCNN
from detbox.models.detectors.htc import HybridTaskCascade
from detbox.models.detectors.retinanet import RetinaNet
from detbox.models.detectors.single_stage import (
    ATSS,
    FCOS,
    FOVEA,
    GFL,
    RepPointsDetector,
    SingleStageDetector,
)
from detbox.models.detectors.ssd import SSD
from detbox.models.detectors.trident import TridentFasterRCNN
from detbox.models.detectors.two_stage import (
    RPN,
    FasterRCNN,
    MaskRCNN,
    MaskScoringRCNN,
    TwoStageDetector,
)

__all__ = [
    "ATSS",
    "FCOS",
    "FOVEA",
    "GFL",
    "RPN",
    "SSD",
    "BaseDetector",
    "CascadeRCNN",
    "FastRCNN",
    "FasterRCNN",
    "GridRCNN",
    "HybridTaskCascade",
    "MaskRCNN",
    "MaskScoringRCNN",
    "RepPointsDetector",
    "RetinaNet",
    "SingleStageDetector",
    "TridentFasterRCNN",
    "TwoStageDetector",
    "rescale_to_original",
]
