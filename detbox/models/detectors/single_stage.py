"""One-stage detectors: backbone + neck + one dense head that both classifies and regresses.

RetinaNet, FCOS, ATSS, GFL and FoveaBox differ only in their head; the detector is the same
three calls, so each is this class under its paper's name (configs and checkpoints say which
model they hold).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import Tensor, nn

from detbox.models.detectors.base import BaseDetector
from detbox.registry import MODELS
from detbox.structures import ImageBatch, Instances

__all__ = ["ATSS", "FCOS", "FOVEA", "GFL", "RepPointsDetector", "SingleStageDetector"]


@MODELS.register
class SingleStageDetector(BaseDetector):
    """Backbone -> neck -> dense head (``loss``, ``predict`` and raw ``forward`` outputs).

    Args:
        backbone: ``MODELS`` config of the backbone (e.g. ResNet).
        neck: ``MODELS`` config of the neck (e.g. FPN with extra levels).
        bbox_head: ``MODELS`` config of the dense head (RetinaHead, FCOSHead, ATSSHead, ...).
        init_cfg: see ``BaseDetector``.
    """

    def __init__(
        self,
        *,
        backbone: Mapping[str, Any] | nn.Module,
        neck: Mapping[str, Any] | nn.Module,
        bbox_head: Mapping[str, Any] | nn.Module,
        init_cfg: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(backbone=backbone, neck=neck, init_cfg=init_cfg)
        self.bbox_head = MODELS.build(bbox_head)

    @property
    def num_classes(self) -> int:
        return self.bbox_head.num_classes

    def forward(self, images: Tensor) -> tuple[list[Tensor], ...]:
        """The head's raw per-level outputs for (B, 3, H, W) images (export, FLOPs); e.g.
        ``(cls_logits, box_deltas)`` for RetinaNet, plus ``centerness`` for FCOS."""
        return self.bbox_head(self.extract_feat(images))

    def loss(self, batch: ImageBatch) -> dict[str, Tensor]:
        """The head's losses (``loss_cls``, ``loss_bbox``, ...) for a batch with GT."""
        return self.bbox_head.loss(self.extract_feat(batch.images), batch.samples)

    def predict(self, batch: ImageBatch) -> list[Instances]:
        """One Instances per image, boxes in original image coordinates, sorted by score."""
        results = self.bbox_head.predict(self.extract_feat(batch.images), batch.samples)
        return self.postprocess(results, batch.samples)


@MODELS.register
class FCOS(SingleStageDetector):
    """FCOS (Tian et al., 2019): a single-stage detector with an ``FCOSHead``."""


@MODELS.register
class ATSS(SingleStageDetector):
    """ATSS (Zhang et al., 2020): a single-stage detector with an ``ATSSHead``."""


@MODELS.register
class GFL(SingleStageDetector):
    """Generalized Focal Loss (Li et al., 2020): a single-stage detector with a ``GFLHead``."""


@MODELS.register
class FOVEA(SingleStageDetector):
    """FoveaBox (Kong et al., 2020): a single-stage detector with a ``FoveaHead``."""


@MODELS.register
class RepPointsDetector(SingleStageDetector):
    """RepPoints (Yang et al., 2019): a single-stage detector with a ``RepPointsHead`` (point
    sets instead of anchors)."""
