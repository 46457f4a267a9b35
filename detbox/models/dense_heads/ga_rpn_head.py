"""GA-RPN head: the RPN with guided anchors (see ``anchor_guide``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Annotated, Any

import torch
from torch import Tensor, nn

from detbox.models.dense_heads.anchor_guide import AnchorGuide, FeatureAdaption
from detbox.models.dense_heads.dense_head import DenseHead
from detbox.models.dense_heads.dense_utils import (
    ProposalSettings,
    flatten_level,
    select_proposals,
)
from detbox.registry import MODELS, TASK_UTILS
from detbox.structures import DetSample, Instances
from detbox.typecheck import Positive, Probability

__all__ = ["GARPNHead"]

STRIDES = (4, 8, 16, 32, 64)
DEFAULT_APPROX_GENERATOR = MappingProxyType({
    "type": "AnchorGenerator", "strides": STRIDES, "ratios": (0.5, 1.0, 2.0),
    "octave_base_scale": 8, "scales_per_octave": 3,
})
DEFAULT_SQUARE_GENERATOR = MappingProxyType({
    "type": "AnchorGenerator", "strides": STRIDES, "ratios": (1.0,), "scales": (8,),
})
DEFAULT_ANCHOR_CODER = MappingProxyType(
    {"type": "DeltaXYWHBoxCoder", "target_stds": (0.07, 0.07, 0.14, 0.14)})
DEFAULT_BOX_CODER = MappingProxyType(
    {"type": "DeltaXYWHBoxCoder", "target_stds": (0.07, 0.07, 0.11, 0.11)})
DEFAULT_GA_ASSIGNER = MappingProxyType({
    "type": "ApproxMaxIoUAssigner", "pos_iou_thr": 0.7, "neg_iou_thr": 0.3, "min_pos_iou": 0.3,
    "ignore_iof_thr": -1.0,
})
DEFAULT_ASSIGNER = MappingProxyType({
    "type": "MaxIoUAssigner", "pos_iou_thr": 0.7, "neg_iou_thr": 0.3, "min_pos_iou": 0.3,
    "ignore_iof_thr": -1.0,
})
DEFAULT_SAMPLER = MappingProxyType({"type": "RandomSampler", "num": 256, "pos_fraction": 0.5})
DEFAULT_LOSS_LOC = MappingProxyType({"type": "FocalLoss", "alpha": 0.25, "gamma": 2.0})
DEFAULT_LOSS_SHAPE = MappingProxyType({"type": "BoundedIoULoss", "beta": 0.2})
DEFAULT_LOSS_CLS = MappingProxyType({"type": "CrossEntropyLoss", "use_sigmoid": True})
DEFAULT_LOSS_BBOX = MappingProxyType({"type": "SmoothL1Loss", "beta": 1.0})


@MODELS.register
class GARPNHead(DenseHead, nn.Module):
    """A shared 3x3 conv; anchor location and shape from it; objectness and deltas from the
    shape-adapted features, for the guided anchors that pass the location filter.

    Args:
        in_channels, feat_channels: channels of the input levels and of the shared conv.
        approx_anchor_generator, square_anchor_generator, anchor_coder, ga_assigner,
            ga_sampler, loss_loc, loss_shape, center_ratio, ignore_ratio, loc_filter_thr,
            prior_prob: the ``AnchorGuide`` settings (defaults: the paper's GA-RPN).
        deform_groups: offset groups of the feature adaption.
        box_coder, assigner, sampler, loss_cls, loss_bbox: the RPN targets and losses on the
            guided anchors.
        test_proposals: ``ProposalSettings`` keys of :meth:`predict`.
    """

    def __init__(
        self,
        *,
        in_channels: Annotated[int, Positive] = 256,
        feat_channels: Annotated[int, Positive] = 256,
        approx_anchor_generator: Mapping[str, Any] | Any = DEFAULT_APPROX_GENERATOR,
        square_anchor_generator: Mapping[str, Any] | Any = DEFAULT_SQUARE_GENERATOR,
        anchor_coder: Mapping[str, Any] | Any = DEFAULT_ANCHOR_CODER,
        ga_assigner: Mapping[str, Any] | Any = DEFAULT_GA_ASSIGNER,
        ga_sampler: Mapping[str, Any] | Any = DEFAULT_SAMPLER,
        loss_loc: Mapping[str, Any] | nn.Module = DEFAULT_LOSS_LOC,
        loss_shape: Mapping[str, Any] | nn.Module = DEFAULT_LOSS_SHAPE,
        center_ratio: Annotated[float, Probability] = 0.2,
        ignore_ratio: Annotated[float, Probability] = 0.5,
        loc_filter_thr: Annotated[float, Probability] = 0.01,
        prior_prob: Annotated[float, Probability] = 0.01,
        deform_groups: Annotated[int, Positive] = 4,
        box_coder: Mapping[str, Any] | Any = DEFAULT_BOX_CODER,
        assigner: Mapping[str, Any] | Any = DEFAULT_ASSIGNER,
        sampler: Mapping[str, Any] | Any = DEFAULT_SAMPLER,
        loss_cls: Mapping[str, Any] | nn.Module = DEFAULT_LOSS_CLS,
        loss_bbox: Mapping[str, Any] | nn.Module = DEFAULT_LOSS_BBOX,
        test_proposals: Mapping[str, Any] | ProposalSettings = MappingProxyType(
            {"nms_pre": 1000, "max_per_img": 1000}),
    ) -> None:
        super().__init__()
        self.rpn_conv = nn.Conv2d(in_channels, feat_channels, 3, padding=1)
        self.guide = AnchorGuide(
            in_channels=feat_channels, approx_anchor_generator=approx_anchor_generator,
            square_anchor_generator=square_anchor_generator, anchor_coder=anchor_coder,
            assigner=ga_assigner, sampler=ga_sampler, loss_loc=loss_loc, loss_shape=loss_shape,
            center_ratio=center_ratio, ignore_ratio=ignore_ratio, loc_filter_thr=loc_filter_thr,
            prior_prob=prior_prob)
        self.adapt = FeatureAdaption(feat_channels, feat_channels, 3, deform_groups)
        self.cls_logits = nn.Conv2d(feat_channels, 1, 1)
        self.box_deltas = nn.Conv2d(feat_channels, 4, 1)
        for conv in (self.rpn_conv, self.cls_logits, self.box_deltas):
            nn.init.normal_(conv.weight, std=0.01)
            nn.init.zeros_(conv.bias)
        self.box_coder = TASK_UTILS.build(box_coder)
        self.assigner = TASK_UTILS.build(assigner)
        self.sampler = TASK_UTILS.build(sampler)
        self.loss_cls = MODELS.build(loss_cls)
        self.loss_bbox = MODELS.build(loss_bbox)
        self.test_proposals = ProposalSettings.from_config(test_proposals, "test_proposals")

    def forward(self, feats: Sequence[Tensor]) -> tuple[list[Tensor], ...]:
        """Per level ``cls_logits`` (B, 1, H, W), ``box_deltas`` (B, 4, H, W), ``loc_logits``
        (B, 1, H, W) and ``shapes`` (B, 2, H, W)."""
        outputs: tuple[list[Tensor], ...] = ([], [], [], [])
        for x in feats:
            x = torch.relu(self.rpn_conv(x))
            loc, shape = self.guide(x, x)
            adapted = self.adapt(x, shape)
            for out, value in zip(outputs, (self.cls_logits(adapted), self.box_deltas(adapted),
                                            loc, shape)):
                out.append(value)
        return outputs

    def loss_by_outputs(
        self, cls_logits: Sequence[Tensor], box_deltas: Sequence[Tensor],
        loc_logits: Sequence[Tensor], shapes: Sequence[Tensor], samples: Sequence[DetSample],
    ) -> dict[str, Tensor]:
        """Location and shape losses; objectness and box losses on sampled guided anchors,
        divided by the number of sampled anchors."""
        loss_loc, loss_shape = self.guide.loss(loc_logits, shapes, samples)
        anchors, masks = self.guide.anchors_and_masks(loc_logits, shapes)
        anchors, masks = torch.cat(anchors, dim=1), torch.cat(masks, dim=1)
        logits = torch.cat([flatten_level(x, 1)[..., 0] for x in cls_logits], dim=1)
        deltas = torch.cat([flatten_level(x, 4) for x in box_deltas], dim=1)
        sel_logits, sel_labels, pos_deltas, pos_targets = [], [], [], []
        for i, sample in enumerate(samples):
            keep = torch.nonzero(masks[i]).flatten()
            image_anchors = anchors[i, keep]
            gt_boxes = sample.gt_or_empty(anchors.device).boxes.to(anchors.dtype)
            assign = self.assigner.assign(image_anchors, gt_boxes, sample.ignored_boxes)
            pos, neg = self.sampler.sample(assign)
            sel_logits.append(logits[i, keep[torch.cat([pos, neg])]])
            sel_labels.append(torch.cat([torch.ones_like(pos), torch.zeros_like(neg)]).float())
            pos_deltas.append(deltas[i, keep[pos]].float())
            pos_targets.append(self.box_coder.encode(image_anchors[pos],
                                                     gt_boxes[assign.matched_gt[pos]]))
        sel_logits, sel_labels = torch.cat(sel_logits), torch.cat(sel_labels)
        num_sampled = max(sel_labels.numel(), 1)
        loss_cls = self.loss_cls(sel_logits, sel_labels, avg_factor=num_sampled)
        if sel_labels.numel() == 0:
            loss_cls = loss_cls + logits.sum() * 0.0
        loss_bbox = self.loss_bbox(torch.cat(pos_deltas), torch.cat(pos_targets),
                                   avg_factor=num_sampled) + deltas.sum() * 0.0
        return {"loss_rpn_cls": loss_cls, "loss_rpn_bbox": loss_bbox, "loss_rpn_loc": loss_loc,
                "loss_rpn_shape": loss_shape}

    @torch.no_grad()
    def predict_by_outputs(
        self, cls_logits: Sequence[Tensor], box_deltas: Sequence[Tensor],
        loc_logits: Sequence[Tensor], shapes: Sequence[Tensor], samples: Sequence[DetSample],
        settings: ProposalSettings | None = None,
    ) -> list[Instances]:
        """Per level the guided anchors that pass the location filter, then RPN selection
        (``select_proposals``): ``boxes``, objectness ``scores``, zero ``labels``."""
        settings = settings or self.test_proposals
        anchors, masks = self.guide.anchors_and_masks(loc_logits, shapes)
        logits = [flatten_level(x, 1)[..., 0] for x in cls_logits]
        deltas = [flatten_level(x, 4) for x in box_deltas]
        results = []
        for i, sample in enumerate(samples):
            keep = [m[i] for m in masks]
            results.append(select_proposals(
                [a[i][k] for a, k in zip(anchors, keep)], [x[i][k] for x, k in zip(logits, keep)],
                [x[i][k] for x, k in zip(deltas, keep)], self._decode, sample.img_shape,
                settings))
        return results

    def _decode(self, anchors: Tensor, deltas: Tensor, img_shape: Sequence[int]) -> Tensor:
        return self.box_coder.decode(anchors, deltas.float(), max_shape=img_shape)
