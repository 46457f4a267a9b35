"""Detectors: compose backbone, neck and heads; ``loss()`` and ``predict()`` on an ImageBatch."""

from detbox.models.detectors.base import BaseDetector, rescale_to_original
from detbox.models.detectors.grid_rcnn import GridRCNN
from detbox.models.detectors.retinanet import RetinaNet
from detbox.models.detectors.trident import TridentFasterRCNN
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
    "GridRCNN",
    "MaskRCNN",
    "MaskScoringRCNN",
    "RetinaNet",
    "TridentFasterRCNN",
    "TwoStageDetector",
    "rescale_to_original",
]
