"""The FPN RoI head of Faster / Mask / Mask Scoring R-CNN."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from types import MappingProxyType
from typing import Any

import torch
from torch import Tensor, nn

from detbox.models.roi_heads.mask_iou_head import mask_iou_targets
from detbox.models.roi_heads.roi_extractor import boxes_to_rois
from detbox.models.roi_heads.targets import positive_mask_targets, sample_proposals
from detbox.registry import MODELS, TASK_UTILS
from detbox.structures import DetSample, Instances

__all__ = ["DEFAULT_RCNN_ASSIGNER", "DEFAULT_RCNN_SAMPLER", "StandardRoIHead"]

DEFAULT_RCNN_ASSIGNER = MappingProxyType({
    "type": "MaxIoUAssigner", "pos_iou_thr": 0.5, "neg_iou_thr": 0.5, "min_pos_iou": 0.5,
    "allow_low_quality_matches": False, "ignore_iof_thr": -1.0,
})
DEFAULT_RCNN_SAMPLER = MappingProxyType({
    "type": "RandomSampler", "num": 512, "pos_fraction": 0.25, "add_gt_as_proposals": True,
})
DEFAULT_BBOX_EXTRACTOR = MappingProxyType({
    "type": "MultiLevelRoIExtractor", "output_size": 7, "featmap_strides": (4, 8, 16, 32)})
DEFAULT_MASK_EXTRACTOR = MappingProxyType({
    "type": "MultiLevelRoIExtractor", "output_size": 14, "featmap_strides": (4, 8, 16, 32)})


@MODELS.register
@MODELS.register(name="MaskScoringRoIHead")
class StandardRoIHead(nn.Module):
    """Pool RoI features per level, then box head, optional mask head, optional MaskIoU head.

    Training: proposals are assigned (IoU 0.5) and sampled (512 per image, 25% positive, GT boxes
    added); the box head trains on all sampled RoIs, the mask and MaskIoU heads on the positives.
    Inference: box head detections, then masks (and mask IoUs) for the kept detections.

    Args:
        bbox_head: ``MODELS`` config of the box head (e.g. ``Shared2FCBBoxHead``).
        bbox_roi_extractor: ``MODELS`` config of the box RoI pooler (7x7 by default).
        mask_head: ``MODELS`` config of the mask head (e.g. ``FCNMaskHead``), or None.
        mask_roi_extractor: ``MODELS`` config of the mask RoI pooler (14x14 by default).
        mask_iou_head: ``MODELS`` config of a ``MaskIoUHead`` (Mask Scoring R-CNN), or None;
            needs a mask head.
        assigner: ``TASK_UTILS`` config of the proposal assigner.
        sampler: ``TASK_UTILS`` config of the RoI sampler.
    """

    def __init__(
        self,
        *,
        bbox_head: Mapping[str, Any] | nn.Module,
        bbox_roi_extractor: Mapping[str, Any] | nn.Module = DEFAULT_BBOX_EXTRACTOR,
        mask_head: Mapping[str, Any] | nn.Module | None = None,
        mask_roi_extractor: Mapping[str, Any] | nn.Module = DEFAULT_MASK_EXTRACTOR,
        mask_iou_head: Mapping[str, Any] | nn.Module | None = None,
        assigner: Mapping[str, Any] | Any = DEFAULT_RCNN_ASSIGNER,
        sampler: Mapping[str, Any] | Any = DEFAULT_RCNN_SAMPLER,
    ) -> None:
        super().__init__()
        if mask_iou_head is not None and mask_head is None:
            raise ValueError("a MaskIoU head needs a mask head (set roi_head.mask_head)")
        self.bbox_roi_extractor = MODELS.build(bbox_roi_extractor)
        self.bbox_head = MODELS.build(bbox_head)
        self.with_mask = mask_head is not None
        self.mask_roi_extractor = MODELS.build(mask_roi_extractor) if self.with_mask else None
        self.mask_head = MODELS.build(mask_head) if self.with_mask else None
        self.mask_iou_head = MODELS.build(mask_iou_head) if mask_iou_head is not None else None
        self.assigner = TASK_UTILS.build(assigner)
        self.sampler = TASK_UTILS.build(sampler)

    @property
    def num_classes(self) -> int:
        return self.bbox_head.num_classes

    def forward(self, feats: Sequence[Tensor], rois: Tensor) -> tuple[Tensor, Tensor]:
        """Raw box head outputs for (R, 5) RoIs: (R, C + 1) logits, (R, 4C) or (R, 4) deltas."""
        return self.bbox_head(self.bbox_roi_extractor(feats, rois))

    def loss(
        self, feats: Sequence[Tensor], proposals: Sequence[Instances],
        samples: Sequence[DetSample],
    ) -> dict[str, Tensor]:
        """``loss_cls``, ``loss_bbox`` (+ ``loss_mask``, + ``loss_mask_iou``).

        Args:
            feats: pyramid levels, finest first, (B, C, H_l, W_l) each.
            proposals: per image, Instances with ``boxes`` in ``img_shape`` coordinates.
            samples: per image, its DetSample with GT (``gt.masks`` when training masks).
        """
        device = feats[0].device
        gts = [s.gt_or_empty(device) for s in samples]
        results = sample_proposals(self.assigner, self.sampler, proposals, gts, samples)
        rois = boxes_to_rois([r.sampled_boxes for r in results])
        cls_score, bbox_pred = self(feats, rois)
        labels, box_targets = self.bbox_head.get_targets(results, gts)
        losses = self.bbox_head.loss(cls_score, bbox_pred, rois, labels, box_targets)
        if self.with_mask:
            losses.update(self._mask_loss(feats, results, gts))
        return losses

    def _mask_loss(self, feats: Sequence[Tensor], results, gts) -> dict[str, Tensor]:
        pos_rois = boxes_to_rois([r.pos_boxes for r in results])
        mask_feats = self.mask_roi_extractor(feats, pos_rois)
        mask_logits = self.mask_head(mask_feats)
        with_iou = self.mask_iou_head is not None
        targets = positive_mask_targets(results, gts, self.mask_head.mask_size, with_iou)
        losses = self.mask_head.loss(mask_logits, targets.masks, targets.labels)
        if with_iou:
            losses.update(self._mask_iou_loss(mask_feats, mask_logits, targets))
        return losses

    def _mask_iou_loss(self, mask_feats: Tensor, mask_logits: Tensor, targets) -> dict:
        probs = self.mask_head.select(mask_logits, targets.labels).sigmoid()
        iou_pred = self.mask_iou_head(mask_feats, probs)
        iou_targets = mask_iou_targets(probs.detach(), targets.masks, targets.area_ratios,
                                       self.mask_head.mask_thr)
        return self.mask_iou_head.loss(iou_pred, targets.labels, iou_targets)

    def predict(
        self, feats: Sequence[Tensor], proposals: Sequence[Instances],
        samples: Sequence[DetSample],
    ) -> list[Instances]:
        """Detections per image in ``img_shape`` coordinates.

        Returns:
            Instances with ``boxes``, ``labels``, ``scores``; with a mask head also ``masks``
            (N, M, M) per-box probabilities of the predicted class (pasted into the image by
            the detector); with a MaskIoU head also ``mask_iou`` (N,).
        """
        rois = boxes_to_rois([p.boxes for p in proposals])
        cls_score, bbox_pred = self(feats, rois)
        dets = self.bbox_head.predict(cls_score, bbox_pred, rois, [s.img_shape for s in samples])
        if self.with_mask:
            dets = self._predict_masks(feats, dets)
        return dets

    def _predict_masks(self, feats: Sequence[Tensor], dets: list[Instances]) -> list[Instances]:
        rois = boxes_to_rois([d.boxes for d in dets])
        labels = torch.cat([d.labels for d in dets])
        mask_feats = self.mask_roi_extractor(feats, rois)
        probs = self.mask_head.predict(self.mask_head(mask_feats), labels)
        ious = None
        if self.mask_iou_head is not None:
            ious = self.mask_iou_head.predict(self.mask_iou_head(mask_feats, probs), labels)
        return attach_masks(dets, probs, ious)


def attach_masks(dets: list[Instances], probs: Tensor, ious: Tensor | None) -> list[Instances]:
    """Split (N, M, M) mask probabilities (and (N,) IoUs) of a batch back onto its images."""
    counts = [len(d) for d in dets]
    out = []
    for det, mask, iou in zip(dets, probs.split(counts),
                              ious.split(counts) if ious is not None else [None] * len(dets)):
        out.append(replace(det, masks=mask, mask_iou=iou))
    return out
