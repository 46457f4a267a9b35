"""The FPN RoI head of Faster / Mask / Mask Scoring R-CNN."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

from torch import Tensor, nn

from detbox.models.roi_heads.box_branch import BoxBranch
from detbox.models.roi_heads.mask_branch import MaskBranch
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

    One ``BoxBranch`` and an optional ``MaskBranch``, both wired from the modules registered
    here (checkpoint keys ``bbox_head.*``, ``mask_head.*``, ...).

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

    @property
    def box_branch(self) -> BoxBranch:
        """The box stage, wired from this head's modules."""
        return BoxBranch(roi_extractor=self.bbox_roi_extractor, bbox_head=self.bbox_head,
                         assigner=self.assigner, sampler=self.sampler)

    @property
    def mask_branch(self) -> MaskBranch | None:
        """The mask stage (None without a mask head), wired from this head's modules."""
        if not self.with_mask:
            return None
        return MaskBranch(roi_extractor=self.mask_roi_extractor, mask_head=self.mask_head,
                          mask_iou_head=self.mask_iou_head)

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
        gts = [s.gt_or_empty(feats[0].device) for s in samples]
        box = self.box_branch
        results = box.sample(proposals, gts, samples, feats)
        losses, _ = box.loss(feats, results, gts)
        if self.with_mask:
            losses.update(self.mask_branch.loss(feats, results, gts))
        return losses

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
        dets = self.box_branch.predict(feats, proposals, [s.img_shape for s in samples])
        if self.with_mask:
            dets = self.mask_branch.predict(feats, dets)
        return dets
