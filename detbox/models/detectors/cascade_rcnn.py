"""Cascade R-CNN and Cascade Mask R-CNN (Cai & Vasconcelos, 2018, 2019)."""

from __future__ import annotations

from detbox.models.detectors.two_stage import TwoStageDetector
from detbox.registry import MODELS

__all__ = ["CascadeRCNN"]


@MODELS.register
class CascadeRCNN(TwoStageDetector):
    """Cascade R-CNN: a two-stage detector with a ``CascadeRoIHead`` (masks: Cascade Mask R-CNN).

    The RoI head's config decides whether there are mask heads; the detector is the same.
    """
