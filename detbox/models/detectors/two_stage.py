"""Two-stage detectors: an RPN proposes boxes, an RoI head classifies, refines and segments them.

``FasterRCNN``, ``MaskRCNN`` and ``MaskScoringRCNN`` are the same composition; the RoI head's
config decides whether there is a mask head and a MaskIoU head. ``RPN`` alone is a class-agnostic
proposal detector (evaluated by proposal recall).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import torch
from torch import Tensor, nn

from detbox.models.detectors.base import BaseDetector
from detbox.models.mask_ops import paste_masks
from detbox.models.roi_heads.roi_extractor import boxes_to_rois
from detbox.registry import MODELS
from detbox.structures import DetSample, ImageBatch, Instances

__all__ = ["RPN", "FasterRCNN", "MaskRCNN", "MaskScoringRCNN", "TwoStageDetector"]


def _shape_samples(images: Tensor) -> list[DetSample]:
    """Placeholder samples for raw ``forward`` calls: every image fills the padded tensor."""
    shape = (int(images.shape[-2]), int(images.shape[-1]))
    return [DetSample(image_id=i, file_name="", ori_shape=shape, img_shape=shape)
            for i in range(images.shape[0])]


@MODELS.register
class TwoStageDetector(BaseDetector):
    """Backbone -> (neck) -> ``RPNHead`` -> RoI head.

    The RPN reads every feature level; the RoI head pools from the levels its extractor names
    (P2-P5 of an FPN, or C4 alone for ``Res5RoIHead``).

    Args:
        backbone: ``MODELS`` config of the backbone.
        neck: ``MODELS`` config of the neck (FPN), or None for C4 detectors.
        rpn_head: ``MODELS`` config of the ``RPNHead``.
        roi_head: ``MODELS`` config of the RoI head (``StandardRoIHead`` or ``Res5RoIHead``).
        init_cfg: see ``BaseDetector``; ``init_weights()`` initializes a C4 head's res5 from
            the same checkpoint (its ``layer4.*``).
    """

    def __init__(
        self,
        *,
        backbone: Mapping[str, Any] | nn.Module,
        rpn_head: Mapping[str, Any] | nn.Module,
        roi_head: Mapping[str, Any] | nn.Module,
        neck: Mapping[str, Any] | nn.Module | None = None,
        init_cfg: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(backbone=backbone, neck=neck, init_cfg=init_cfg)
        self.rpn_head = MODELS.build(rpn_head)
        self.roi_head = MODELS.build(roi_head)

    @property
    def num_classes(self) -> int:
        return self.roi_head.num_classes

    def forward(self, images: Tensor) -> dict[str, Any]:
        """Raw outputs for (B, 3, H, W) images, for export and FLOPs counting.

        Returns:
            ``rpn_cls_logits`` / ``rpn_box_deltas`` (per level), ``proposals`` (per image,
            (K_i, 4)), and the RoI head's ``cls_score`` (R, C + 1) and ``bbox_pred`` for them.
        """
        feats = self.extract_feat(images)
        rpn_cls, rpn_deltas = self.rpn_head(feats)
        proposals = self.rpn_head.predict_by_outputs(rpn_cls, rpn_deltas, _shape_samples(images))
        cls_score, bbox_pred = self.roi_head(feats, boxes_to_rois([p.boxes for p in proposals]))
        return {"rpn_cls_logits": rpn_cls, "rpn_box_deltas": rpn_deltas,
                "proposals": [p.boxes for p in proposals], "cls_score": cls_score,
                "bbox_pred": bbox_pred}

    def loss(self, batch: ImageBatch) -> dict[str, Tensor]:
        """RPN and RoI head losses for a batch whose samples carry GT in image coordinates."""
        feats = self.extract_feat(batch.images)
        losses, proposals = self.rpn_head.loss_and_predict(feats, batch.samples)
        losses.update(self.roi_head.loss(feats, proposals, batch.samples))
        return losses

    def predict(self, batch: ImageBatch) -> list[Instances]:
        """One Instances per image in original image coordinates; masks (N, H, W) bool at
        ``ori_shape`` when the RoI head has a mask head."""
        feats = self.extract_feat(batch.images)
        proposals = self.rpn_head.predict(feats, batch.samples)
        results = self.roi_head.predict(feats, proposals, batch.samples)
        return self.postprocess(results, batch.samples)

    def postprocess_masks(self, instances: Instances, sample: DetSample) -> Instances:
        """Paste per-box mask probabilities at ``ori_shape`` (boxes already mapped back)."""
        mask_head = getattr(self.roi_head, "mask_head", None)
        if instances.masks is None or mask_head is None:
            return instances
        masks = _unflip_masks(instances.masks, sample.flip)
        pasted = paste_masks(masks, instances.boxes, sample.ori_shape,
                             threshold=mask_head.mask_thr, mode=mask_head.paste_mode)
        return replace(instances, masks=pasted)


def _unflip_masks(masks: Tensor, flip: str | None) -> Tensor:
    """Per-box (N, M, M) maps predicted on a flipped image -> maps in the unflipped image."""
    dims = {None: (), "horizontal": (-1,), "vertical": (-2,), "diagonal": (-2, -1)}[flip]
    return torch.flip(masks, dims) if dims else masks


@MODELS.register
class FasterRCNN(TwoStageDetector):
    """Faster R-CNN (Ren et al., 2015): a ``TwoStageDetector`` whose RoI head has no masks."""


@MODELS.register
class MaskRCNN(TwoStageDetector):
    """Mask R-CNN (He et al., 2017): the RoI head has a mask head."""


@MODELS.register
class MaskScoringRCNN(TwoStageDetector):
    """Mask Scoring R-CNN (Huang et al., 2019): the RoI head also has a MaskIoU head, and
    ``Instances.mask_iou`` carries each detection's predicted mask IoU; its mask score is
    ``scores * mask_iou``."""


@MODELS.register
class RPN(BaseDetector):
    """Region Proposal Network alone: class-agnostic proposals (label 0) with objectness scores.

    Args:
        backbone: ``MODELS`` config of the backbone.
        rpn_head: ``MODELS`` config of the ``RPNHead``; its ``test_proposals`` set how many
            proposals ``predict`` returns.
        neck: ``MODELS`` config of the neck, or None.
        init_cfg: see ``BaseDetector``.
    """

    def __init__(
        self,
        *,
        backbone: Mapping[str, Any] | nn.Module,
        rpn_head: Mapping[str, Any] | nn.Module,
        neck: Mapping[str, Any] | nn.Module | None = None,
        init_cfg: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(backbone=backbone, neck=neck, init_cfg=init_cfg)
        self.rpn_head = MODELS.build(rpn_head)

    @property
    def num_classes(self) -> int:
        return 1

    def forward(self, images: Tensor) -> tuple[list[Tensor], list[Tensor]]:
        """Raw RPN outputs ``(cls_logits, box_deltas)`` per level."""
        return self.rpn_head(self.extract_feat(images))

    def loss(self, batch: ImageBatch) -> dict[str, Tensor]:
        """``{'loss_rpn_cls', 'loss_rpn_bbox'}``."""
        return self.rpn_head.loss(self.extract_feat(batch.images), batch.samples)

    def predict(self, batch: ImageBatch) -> list[Instances]:
        """Proposals per image in original image coordinates, sorted by objectness."""
        proposals = self.rpn_head.predict(self.extract_feat(batch.images), batch.samples)
        return self.postprocess(proposals, batch.samples)
