"""The RoI head of Hybrid Task Cascade (Chen et al., 2019): Cascade Mask R-CNN with box and mask
branches interleaved, mask features flowing from stage to stage, and an optional semantic
segmentation branch whose features enrich every RoI feature."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from detbox.models.roi_heads.box_branch import BoxBranch
from detbox.models.roi_heads.cascade_roi_head import (
    DEFAULT_STAGE_IOU_THRS,
    DEFAULT_STAGE_LOSS_WEIGHTS,
    DEFAULT_STAGE_TARGET_STDS,
    CascadeRoIHead,
    ConfigLike,
    cascade_box_predict,
    stage_losses,
)
from detbox.models.roi_heads.mask_branch import attach_masks
from detbox.models.roi_heads.roi_extractor import boxes_to_rois
from detbox.models.roi_heads.standard_roi_head import (
    DEFAULT_BBOX_EXTRACTOR,
    DEFAULT_MASK_EXTRACTOR,
    DEFAULT_RCNN_ASSIGNER,
    DEFAULT_RCNN_SAMPLER,
)
from detbox.models.roi_heads.targets import SamplingResult, positive_mask_targets
from detbox.registry import MODELS
from detbox.structures import DetSample, Instances

__all__ = ["HTCRoIHead", "SemanticRoIFeatures"]

DEFAULT_SEMANTIC_EXTRACTOR = MappingProxyType({
    "type": "MultiLevelRoIExtractor", "output_size": 14, "featmap_strides": (8,)})

RoIFeatureFn = Callable[[Sequence[Tensor], Tensor], Tensor]


@dataclass(eq=False)
class SemanticRoIFeatures:
    """``extract(feats, rois)`` plus the RoIs' crops of the semantic feature map (average-pooled
    to the same size): HTC's RoI features. (R, 5) RoIs -> (R, C, S, S)."""

    extract: RoIFeatureFn
    semantic_extract: RoIFeatureFn
    semantic_feat: Tensor

    def __call__(self, feats: Sequence[Tensor], rois: Tensor) -> Tensor:
        roi_feats = self.extract(feats, rois)
        semantic = self.semantic_extract([self.semantic_feat], rois)
        if semantic.shape[-2:] != roi_feats.shape[-2:]:
            semantic = F.adaptive_avg_pool2d(semantic, roi_feats.shape[-2:])
        return roi_feats + semantic


@MODELS.register
class HTCRoIHead(CascadeRoIHead):
    """Cascade box stages, a mask head per stage fed by the previous stage's mask features, and
    an optional ``FusedSemanticHead``.

    Training, stage ``t``: the box head trains as in ``CascadeRoIHead``; with ``interleaved``
    its refined RoIs (GT dropped) are assigned and sampled again and the mask head trains on
    those positives (the box branch's output feeds the mask branch of the same stage). With
    ``mask_info_flow`` the mask heads of stages ``0..t-1`` run first on the same RoIs and hand
    their features on (``HTCMaskHead``). The semantic head trains on each image's
    ``gt_sem_seg`` (``loss_semantic_seg``); its feature map is cropped for every RoI and added
    to the box and mask RoI features.

    Inference: boxes as in ``CascadeRoIHead`` (stage scores averaged); the masks are the mean
    of every stage's mask probabilities, computed along the information flow.

    Args:
        bbox_head: see ``CascadeRoIHead``.
        mask_head: ``MODELS`` config of an ``HTCMaskHead`` (repeated, or one per stage); unless
            set, ``with_conv_res`` is on for every stage but the first when ``mask_info_flow``.
        num_stages, stage_loss_weights, stage_iou_thrs, stage_target_stds: see
            ``CascadeRoIHead``.
        bbox_roi_extractor: ``MODELS`` config of the box RoI pooler.
        mask_roi_extractor: ``MODELS`` config of the mask RoI pooler.
        semantic_head: ``MODELS`` config of a ``FusedSemanticHead``, or None (HTC without
            semantic).
        semantic_roi_extractor: ``MODELS`` config of the pooler of the semantic feature map
            (one level, at the semantic head's fusion stride).
        interleaved: train each mask head on its box stage's refined RoIs.
        mask_info_flow: pass mask features from stage to stage.
        assigner, sampler: see ``CascadeRoIHead``.
    """

    def __init__(
        self,
        *,
        bbox_head: ConfigLike | Sequence[ConfigLike],
        mask_head: ConfigLike | Sequence[ConfigLike],
        num_stages: int = 3,
        stage_loss_weights: Sequence[float] = DEFAULT_STAGE_LOSS_WEIGHTS,
        stage_iou_thrs: Sequence[float] = DEFAULT_STAGE_IOU_THRS,
        stage_target_stds: Sequence[Sequence[float]] = DEFAULT_STAGE_TARGET_STDS,
        bbox_roi_extractor: ConfigLike = DEFAULT_BBOX_EXTRACTOR,
        mask_roi_extractor: ConfigLike = DEFAULT_MASK_EXTRACTOR,
        semantic_head: ConfigLike | None = None,
        semantic_roi_extractor: ConfigLike = DEFAULT_SEMANTIC_EXTRACTOR,
        interleaved: bool = True,
        mask_info_flow: bool = True,
        assigner: Mapping[str, Any] | Any = DEFAULT_RCNN_ASSIGNER,
        sampler: Mapping[str, Any] | Any = DEFAULT_RCNN_SAMPLER,
    ) -> None:
        self._info_flow = mask_info_flow  # read while the mask heads are built
        super().__init__(
            bbox_head=bbox_head, num_stages=num_stages, stage_loss_weights=stage_loss_weights,
            stage_iou_thrs=stage_iou_thrs, stage_target_stds=stage_target_stds,
            bbox_roi_extractor=bbox_roi_extractor, mask_head=mask_head,
            mask_roi_extractor=mask_roi_extractor, assigner=assigner, sampler=sampler,
        )
        self.interleaved = interleaved
        self.mask_info_flow = mask_info_flow
        self.semantic_head = MODELS.build(semantic_head) if semantic_head is not None else None
        self.semantic_roi_extractor = (MODELS.build(semantic_roi_extractor)
                                       if semantic_head is not None else None)

    def _mask_head_for_stage(self, cfg: dict, stage: int) -> dict:
        cfg.setdefault("with_conv_res", self._info_flow and stage > 0)
        return cfg

    @property
    def with_semantic(self) -> bool:
        return self.semantic_head is not None

    def _extractors(self, semantic_feat: Tensor | None) -> tuple[RoIFeatureFn, RoIFeatureFn]:
        """The box and mask RoI feature functions of a batch."""
        if semantic_feat is None:
            return self.bbox_roi_extractor, self.mask_roi_extractor
        return (SemanticRoIFeatures(self.bbox_roi_extractor, self.semantic_roi_extractor,
                                    semantic_feat),
                SemanticRoIFeatures(self.mask_roi_extractor, self.semantic_roi_extractor,
                                    semantic_feat))

    def _box_branches(self, extract: RoIFeatureFn) -> list[BoxBranch]:
        return [replace(branch, roi_extractor=extract) for branch in self.box_branches]

    def forward(self, feats: Sequence[Tensor], rois: Tensor) -> tuple[Tensor, Tensor]:
        """As ``CascadeRoIHead.forward``, with the semantic features when there are any."""
        semantic_feat = self.semantic_head(feats)[1] if self.with_semantic else None
        return self._forward_stages(self._extractors(semantic_feat)[0], feats, rois)

    def loss(
        self, feats: Sequence[Tensor], proposals: Sequence[Instances],
        samples: Sequence[DetSample],
    ) -> dict[str, Tensor]:
        """``loss_s<t>_cls``, ``loss_s<t>_bbox``, ``loss_s<t>_mask`` for every stage ``t``
        (+ ``loss_semantic_seg``); samples need ``gt.masks`` (and ``gt_sem_seg``)."""
        gts = [s.gt_or_empty(feats[0].device) for s in samples]
        img_shapes = [s.img_shape for s in samples]
        losses: dict[str, Tensor] = {}
        semantic_feat = None
        if self.with_semantic:
            seg_logits, semantic_feat = self.semantic_head(feats)
            stride = self.semantic_roi_extractor.featmap_strides[0]
            losses.update(self.semantic_head.loss_by_outputs(seg_logits, samples, stride))
        box_extract, mask_extract = self._extractors(semantic_feat)
        last = self.num_stages - 1
        for t, box in enumerate(self._box_branches(box_extract)):
            weight = self.stage_loss_weights[t]
            results = box.sample(proposals, gts, samples)
            box_losses, out = box.loss(feats, results, gts)
            losses.update(stage_losses(box_losses, t, weight))
            refined = (box.refine_sampled(out, results, img_shapes)
                       if self.interleaved or t < last else None)
            mask_results = box.sample(refined, gts, samples) if self.interleaved else results
            mask_losses = self._mask_loss(t, mask_extract, feats, mask_results, gts)
            losses.update(stage_losses(mask_losses, t, weight))
            proposals = refined
        return losses

    def _mask_loss(
        self, stage: int, extract: RoIFeatureFn, feats: Sequence[Tensor],
        results: Sequence[SamplingResult], gts: Sequence[Instances],
    ) -> dict[str, Tensor]:
        """``loss_mask`` of stage ``stage`` on the positives, after the earlier mask heads."""
        mask_feats = extract(feats, boxes_to_rois([r.pos_boxes for r in results]))
        res_feat = None
        if self.mask_info_flow:
            for head in self.mask_heads[:stage]:
                _, res_feat = head(mask_feats, res_feat)
        head = self.mask_heads[stage]
        logits, _ = head(mask_feats, res_feat)
        targets = positive_mask_targets(results, gts, head.mask_size)
        return head.loss_by_outputs(logits, targets.masks, targets.labels)

    def predict(
        self, feats: Sequence[Tensor], proposals: Sequence[Instances],
        samples: Sequence[DetSample],
    ) -> list[Instances]:
        """Detections per image in ``img_shape`` coordinates with ``masks`` (N, M, M): the
        mean of the stages' mask probabilities (pasted into the image by the detector)."""
        semantic_feat = self.semantic_head(feats)[1] if self.with_semantic else None
        box_extract, mask_extract = self._extractors(semantic_feat)
        dets, _ = cascade_box_predict(self._box_branches(box_extract), feats, proposals,
                                      [s.img_shape for s in samples])
        rois = boxes_to_rois([d.boxes for d in dets])
        labels = torch.cat([d.labels for d in dets])
        mask_feats = mask_extract(feats, rois)
        probs, res_feat = [], None
        for head in self.mask_heads:
            logits, feat = head(mask_feats, res_feat)
            res_feat = feat if self.mask_info_flow else None
            probs.append(head.predict_by_outputs(logits, labels))
        return attach_masks(dets, torch.stack(probs).mean(dim=0), None)
