"""Detectors: compose backbone, neck and heads; ``loss()`` and ``predict()`` on an ImageBatch."""

from detbox.models.detectors.base import BaseDetector, rescale_to_original
from detbox.models.detectors.retinanet import RetinaNet
from detbox.models.detectors.single_stage import (
    ATSS,
    FCOS,
    FOVEA,
    GFL,
    SingleStageDetector,
)
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
    "SingleStageDetector",
    "RPN",
    "BaseDetector",
    "FasterRCNN",
    "MaskRCNN",
    "MaskScoringRCNN",
    "RetinaNet",
    "TwoStageDetector",
    "rescale_to_original",
]
