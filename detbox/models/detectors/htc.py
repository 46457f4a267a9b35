"""Hybrid Task Cascade (Chen et al., 2019)."""

from __future__ import annotations

from detbox.models.detectors.two_stage import TwoStageDetector
from detbox.registry import MODELS

__all__ = ["HybridTaskCascade"]


@MODELS.register
class HybridTaskCascade(TwoStageDetector):
    """HTC: a two-stage detector with an ``HTCRoIHead`` (interleaved box and mask stages, mask
    information flow, optional semantic segmentation branch).

    The semantic branch lives in the RoI head and trains from each sample's ``gt_sem_seg``.
    """
