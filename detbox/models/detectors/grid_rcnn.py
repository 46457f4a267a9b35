"""Grid R-CNN (Lu et al., CVPR 2019; Grid R-CNN Plus): a two-stage detector whose RoI head
(``GridRoIHead``) places boxes by grid-point heat maps instead of regressing deltas."""

from __future__ import annotations

from detbox.models.detectors.two_stage import TwoStageDetector
from detbox.registry import MODELS

__all__ = ["GridRCNN"]


@MODELS.register
class GridRCNN(TwoStageDetector):
    """Backbone -> FPN -> ``RPNHead`` -> ``GridRoIHead`` (see ``TwoStageDetector``)."""
