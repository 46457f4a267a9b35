"""SSD: a one-stage detector on a fixed-size input, backbone maps straight into the head."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from torch import Tensor, nn

from detbox.models.dense_heads.ssd_head import batch_input_size
from detbox.models.detectors.base import BaseDetector
from detbox.registry import MODELS
from detbox.structures import DetSample, ImageBatch, Instances

__all__ = ["SSD"]


def unpadded(images: Tensor, samples: Sequence[DetSample]) -> Tensor:
    """(B, 3, H, W) batch cut to its largest ``img_shape``: the loaders pad to a multiple of 32,
    which would give SSD's 300 px input a 320 px map grid that its priors do not fit."""
    height, width = batch_input_size(samples)
    return images[..., :height, :width]


@MODELS.register
class SSD(BaseDetector):
    """Backbone (optionally a neck) -> ``SSDHead``, on inputs resized to a fixed size.

    Args:
        backbone: ``MODELS`` config of the backbone (e.g. SSDVGG, SSDMobileNetV3), whose maps
            are the prior levels.
        bbox_head: ``MODELS`` config of the head (SSDHead); ``in_channels`` defaults to the
            backbone's ``out_channels``.
        neck: optional ``MODELS`` config of a neck between them.
        init_cfg: see ``BaseDetector``.
    """

    def __init__(
        self,
        *,
        backbone: Mapping[str, Any] | nn.Module,
        bbox_head: Mapping[str, Any] | nn.Module,
        neck: Mapping[str, Any] | nn.Module | None = None,
        init_cfg: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(backbone=backbone, neck=neck, init_cfg=init_cfg)
        if isinstance(bbox_head, Mapping) and bbox_head.get("in_channels") is None:
            source = self.neck if self.neck is not None else self.backbone
            bbox_head = {**bbox_head, "in_channels": list(source.out_channels)}
        self.bbox_head = MODELS.build(bbox_head)

    @property
    def num_classes(self) -> int:
        return self.bbox_head.num_classes

    def forward(self, images: Tensor) -> tuple[list[Tensor], list[Tensor]]:
        """Raw head outputs ``(cls_logits, box_deltas)`` for (B, 3, H, W) images (export, FLOPs)."""
        return self.bbox_head(self.extract_feat(images))

    def loss(self, batch: ImageBatch) -> dict[str, Tensor]:
        """``{'loss_cls', 'loss_bbox'}`` for a batch whose samples carry GT in image coords."""
        feats = self.extract_feat(unpadded(batch.images, batch.samples))
        return self.bbox_head.loss(feats, batch.samples)

    def predict(self, batch: ImageBatch) -> list[Instances]:
        """One Instances per image, boxes in original image coordinates, sorted by score."""
        feats = self.extract_feat(unpadded(batch.images, batch.samples))
        return self.postprocess(self.bbox_head.predict(feats, batch.samples), batch.samples)
