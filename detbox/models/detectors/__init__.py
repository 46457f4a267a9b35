"""Detectors: compose backbone, neck and heads; ``loss()`` and ``predict()`` on an ImageBatch."""

from detbox.models.detectors.base import BaseDetector, rescale_to_original
from detbox.models.detectors.retinanet import RepPointsDetector, RetinaNet
from detbox.models.detectors.two_stage import (
    RPN,
    FasterRCNN,
    MaskRCNN,
    MaskScoringRCNN,
    TwoStageDetector,
)

__all__ = [
    "RPN",
    "BaseDetector",
    "FasterRCNN",
    "MaskRCNN",
    "MaskScoringRCNN",
    "RepPointsDetector",
    "RetinaNet",
    "TwoStageDetector",
    "rescale_to_original",
]
