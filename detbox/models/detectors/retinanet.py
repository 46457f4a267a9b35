"""RetinaNet: a one-stage detector, backbone + FPN + a dense anchor head."""

from __future__ import annotations

from detbox.models.detectors.single_stage import SingleStageDetector
from detbox.registry import MODELS

__all__ = ["RetinaNet"]


@MODELS.register
class RetinaNet(SingleStageDetector):
    """Backbone -> neck -> ``RetinaHead`` (Lin et al., 2017).

    Args:
        backbone: ``MODELS`` config of the backbone (e.g. ResNet).
        neck: ``MODELS`` config of the neck (e.g. FPN with ``extra_convs='input'``).
        bbox_head: ``MODELS`` config of the dense head (e.g. RetinaHead).
        init_cfg: see ``BaseDetector``.
    """
