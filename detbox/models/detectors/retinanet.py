"""RetinaNet: a one-stage detector, backbone + FPN + a dense anchor head."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import Tensor, nn

from detbox.models.detectors.base import BaseDetector
from detbox.registry import MODELS
from detbox.structures import ImageBatch, Instances

__all__ = ["RepPointsDetector", "RetinaNet"]


@MODELS.register
class RetinaNet(BaseDetector):
    """Backbone -> neck -> a dense head (``RetinaHead`` or another one-stage head).

    Args:
        backbone: ``MODELS`` config of the backbone (e.g. ResNet).
        neck: ``MODELS`` config of the neck (e.g. FPN with ``extra_convs='input'``).
        bbox_head: ``MODELS`` config of the dense head (e.g. RetinaHead).
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
        """Raw head outputs (``(cls_logits, box_deltas)`` for RetinaHead) for (B, 3, H, W)
        images (export, FLOPs)."""
        return self.bbox_head(self.extract_feat(images))

    def loss(self, batch: ImageBatch) -> dict[str, Tensor]:
        """``{'loss_cls', 'loss_bbox'}`` for a batch whose samples carry GT in image coords."""
        return self.bbox_head.loss(self.extract_feat(batch.images), batch.samples)

    def predict(self, batch: ImageBatch) -> list[Instances]:
        """One Instances per image, boxes in original image coordinates, sorted by score."""
        results = self.bbox_head.predict(self.extract_feat(batch.images), batch.samples)
        return self.postprocess(results, batch.samples)


@MODELS.register
class RepPointsDetector(RetinaNet):
    """RepPoints (Yang et al., 2019): backbone -> FPN -> ``RepPointsHead``; the one-stage
    pipeline of RetinaNet with point sets instead of anchors."""
