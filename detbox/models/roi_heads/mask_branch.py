"""The mask stage of Mask (Scoring) R-CNN: segment the positive RoIs (training) or the
detections (inference), and optionally predict each mask's IoU.

Like ``BoxBranch``, a ``MaskBranch`` wires modules that the RoI head registers itself.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import torch
from torch import Tensor, nn

from detbox.models.roi_heads.mask_iou_head import mask_iou_targets
from detbox.models.roi_heads.roi_extractor import boxes_to_rois
from detbox.models.roi_heads.targets import (
    PositiveMaskTargets,
    SamplingResult,
    positive_mask_targets,
)
from detbox.structures import Instances

__all__ = ["MaskBranch", "attach_masks"]


@dataclass(eq=False)
class MaskBranch:
    """RoI feature extractor + mask head + optional MaskIoU head.

    Attributes:
        roi_extractor: ``extract(feats, rois)``: per-level maps and (R, 5) RoIs -> (R, C, S, S).
        mask_head: an ``FCNMaskHead``-like module (``mask_size``, ``select``,
            ``loss_by_outputs``, ``predict_by_outputs``).
        mask_iou_head: a ``MaskIoUHead``-like module, or None.
    """

    roi_extractor: Callable[[Sequence[Tensor], Tensor], Tensor]
    mask_head: nn.Module
    mask_iou_head: nn.Module | None = None

    def loss(
        self, feats: Sequence[Tensor], sampling_results: Sequence[SamplingResult],
        gts: Sequence[Instances],
    ) -> dict[str, Tensor]:
        """``loss_mask`` (+ ``loss_mask_iou``) on each image's sampled positives.

        Args:
            feats: feature levels, (B, C, H_l, W_l) each.
            sampling_results: per image, the box stage's sampled RoIs.
            gts: per image, its GT Instances with ``masks`` (G, H, W).
        """
        pos_rois = boxes_to_rois([r.pos_boxes for r in sampling_results])
        return self.loss_by_feats(self.roi_extractor(feats, pos_rois), sampling_results, gts)

    def loss_by_feats(
        self, mask_feats: Tensor, sampling_results: Sequence[SamplingResult],
        gts: Sequence[Instances],
    ) -> dict[str, Tensor]:
        """:meth:`loss` from already pooled (P, C, S, S) features of the positives (e.g. the
        C4 head's res5 features, shared with the box head)."""
        mask_logits = self.mask_head(mask_feats)
        with_iou = self.mask_iou_head is not None
        targets = positive_mask_targets(sampling_results, gts, self.mask_head.mask_size,
                                        with_iou)
        losses = self.mask_head.loss_by_outputs(mask_logits, targets.masks, targets.labels)
        if with_iou:
            losses.update(self._mask_iou_loss(mask_feats, mask_logits, targets))
        return losses

    def _mask_iou_loss(
        self, mask_feats: Tensor, mask_logits: Tensor, targets: PositiveMaskTargets
    ) -> dict[str, Tensor]:
        probs = self.mask_head.select(mask_logits, targets.labels).sigmoid()
        iou_pred = self.mask_iou_head(mask_feats, probs)
        iou_targets = mask_iou_targets(probs.detach(), targets.masks, targets.area_ratios,
                                       self.mask_head.mask_thr)
        return self.mask_iou_head.loss_by_outputs(iou_pred, targets.labels, iou_targets)

    def predict(self, feats: Sequence[Tensor], dets: list[Instances]) -> list[Instances]:
        """Each detection with ``masks`` (N, M, M) probabilities of its class (pasted into the
        image by the detector) and, with a MaskIoU head, ``mask_iou`` (N,)."""
        rois = boxes_to_rois([d.boxes for d in dets])
        labels = torch.cat([d.labels for d in dets])
        mask_feats = self.roi_extractor(feats, rois)
        probs = self.mask_head.predict_by_outputs(self.mask_head(mask_feats), labels)
        ious = None
        if self.mask_iou_head is not None:
            ious = self.mask_iou_head.predict_by_outputs(
                self.mask_iou_head(mask_feats, probs), labels)
        return attach_masks(dets, probs, ious)


def attach_masks(dets: list[Instances], probs: Tensor, ious: Tensor | None) -> list[Instances]:
    """Split (N, M, M) mask probabilities (and (N,) IoUs) of a batch back onto its images."""
    counts = [len(d) for d in dets]
    out = []
    for det, mask, iou in zip(dets, probs.split(counts),
                              ious.split(counts) if ious is not None else [None] * len(dets)):
        out.append(replace(det, masks=mask, mask_iou=iou))
    return out
