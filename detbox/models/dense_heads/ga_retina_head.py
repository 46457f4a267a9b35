"""GA-RetinaNet head: RetinaNet's towers with guided anchors (see ``anchor_guide``)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Annotated, Any

import torch
from torch import Tensor, nn

from detbox.models.dense_heads.anchor_guide import AnchorGuide, FeatureAdaption
from detbox.models.dense_heads.conv_tower import cls_reg_towers
from detbox.models.dense_heads.dense_head import DenseHead
from detbox.models.dense_heads.dense_utils import (
    dense_targets,
    flatten_level,
    select_detections,
)
from detbox.models.dense_heads.detection_settings import (
    DetectionSettings,
    WithDetectionSettings,
)
from detbox.registry import MODELS, TASK_UTILS
from detbox.structures import DetSample, Instances
from detbox.typecheck import Positive, Probability, Range

__all__ = ["GARetinaHead"]

STRIDES = (8, 16, 32, 64, 128)
DEFAULT_APPROX_GENERATOR = MappingProxyType({
    "type": "AnchorGenerator", "strides": STRIDES, "ratios": (0.5, 1.0, 2.0),
    "octave_base_scale": 4, "scales_per_octave": 3,
})
DEFAULT_SQUARE_GENERATOR = MappingProxyType({
    "type": "AnchorGenerator", "strides": STRIDES, "ratios": (1.0,), "scales": (4,),
})
DEFAULT_CODER = MappingProxyType({"type": "DeltaXYWHBoxCoder"})
DEFAULT_GA_ASSIGNER = MappingProxyType({
    "type": "ApproxMaxIoUAssigner", "pos_iou_thr": 0.5, "neg_iou_thr": 0.4, "min_pos_iou": 0.4,
    "ignore_iof_thr": -1.0,
})
DEFAULT_GA_SAMPLER = MappingProxyType({"type": "RandomSampler", "num": 256, "pos_fraction": 0.5})
DEFAULT_ASSIGNER = MappingProxyType({
    "type": "MaxIoUAssigner", "pos_iou_thr": 0.5, "neg_iou_thr": 0.5, "min_pos_iou": 0.0,
    "ignore_iof_thr": -1.0,
})
DEFAULT_FOCAL = MappingProxyType({"type": "FocalLoss", "alpha": 0.25, "gamma": 2.0})
DEFAULT_LOSS_SHAPE = MappingProxyType({"type": "BoundedIoULoss", "beta": 0.2})
DEFAULT_LOSS_BBOX = MappingProxyType({"type": "SmoothL1Loss", "beta": 0.04})


@MODELS.register
class GARetinaHead(WithDetectionSettings, DenseHead, nn.Module):
    """RetinaNet towers; anchor location from the class tower, anchor shape from the box tower,
    both towers adapted to the shape; 3x3 classifier and box regressor on guided anchors.

    Args:
        num_classes, in_channels, feat_channels, stacked_convs, norm, prior_prob: as
            ``RetinaHead``.
        approx_anchor_generator, square_anchor_generator, anchor_coder, ga_assigner,
            ga_sampler, loss_loc, loss_shape, center_ratio, ignore_ratio, loc_filter_thr: the
            ``AnchorGuide`` settings (defaults: the paper's GA-RetinaNet).
        deform_groups: offset groups of the feature adaption.
        box_coder, assigner, loss_cls, loss_bbox: the detection targets and losses on the
            guided anchors (locations below ``loc_filter_thr`` get none).
        score_thr, nms_pre, nms_iou_thr, max_per_img, nms: test-time selection, see
            ``DetectionSettings`` (``nms=dict(type='soft_nms', ...)``: Soft-NMS).
    """

    def __init__(
        self,
        *,
        num_classes: Annotated[int, Positive],
        in_channels: Annotated[int, Positive],
        feat_channels: Annotated[int, Positive] = 256,
        stacked_convs: Annotated[int, Range(ge=0)] = 4,
        norm: str | None = None,
        prior_prob: Annotated[float, Range(gt=0, lt=1)] = 0.01,
        approx_anchor_generator: Mapping[str, Any] | Any = DEFAULT_APPROX_GENERATOR,
        square_anchor_generator: Mapping[str, Any] | Any = DEFAULT_SQUARE_GENERATOR,
        anchor_coder: Mapping[str, Any] | Any = DEFAULT_CODER,
        ga_assigner: Mapping[str, Any] | Any = DEFAULT_GA_ASSIGNER,
        ga_sampler: Mapping[str, Any] | Any = DEFAULT_GA_SAMPLER,
        loss_loc: Mapping[str, Any] | nn.Module = DEFAULT_FOCAL,
        loss_shape: Mapping[str, Any] | nn.Module = DEFAULT_LOSS_SHAPE,
        center_ratio: Annotated[float, Probability] = 0.2,
        ignore_ratio: Annotated[float, Probability] = 0.5,
        loc_filter_thr: Annotated[float, Probability] = 0.01,
        deform_groups: Annotated[int, Positive] = 4,
        box_coder: Mapping[str, Any] | Any = DEFAULT_CODER,
        assigner: Mapping[str, Any] | Any = DEFAULT_ASSIGNER,
        loss_cls: Mapping[str, Any] | nn.Module = DEFAULT_FOCAL,
        loss_bbox: Mapping[str, Any] | nn.Module = DEFAULT_LOSS_BBOX,
        score_thr: Annotated[float, Probability] = 0.05,
        nms_pre: Annotated[int, Range(ge=-1)] = 1000,
        nms_iou_thr: Annotated[float, Probability] = 0.5,
        max_per_img: Annotated[int, Positive] = 100,
        nms: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.cls_convs, self.reg_convs, out = cls_reg_towers(
            in_channels, feat_channels, stacked_convs, norm)
        self.guide = AnchorGuide(
            in_channels=out, approx_anchor_generator=approx_anchor_generator,
            square_anchor_generator=square_anchor_generator, anchor_coder=anchor_coder,
            assigner=ga_assigner, sampler=ga_sampler, loss_loc=loss_loc, loss_shape=loss_shape,
            center_ratio=center_ratio, ignore_ratio=ignore_ratio, loc_filter_thr=loc_filter_thr,
            prior_prob=prior_prob)
        self.adapt_cls = FeatureAdaption(out, out, 3, deform_groups)
        self.adapt_reg = FeatureAdaption(out, out, 3, deform_groups)
        self.cls_logits = nn.Conv2d(out, num_classes, 3, padding=1)
        self.box_deltas = nn.Conv2d(out, 4, 3, padding=1)
        for module in [*self.cls_convs, *self.reg_convs, self.cls_logits, self.box_deltas]:
            if isinstance(module, nn.Conv2d):
                nn.init.normal_(module.weight, std=0.01)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
        nn.init.constant_(self.cls_logits.bias, -math.log((1 - prior_prob) / prior_prob))
        self.box_coder = TASK_UTILS.build(box_coder)
        self.assigner = TASK_UTILS.build(assigner)
        self.loss_cls = MODELS.build(loss_cls)
        self.loss_bbox = MODELS.build(loss_bbox)
        self.test_settings = DetectionSettings(
            score_thr=score_thr, nms_pre=nms_pre, nms_iou_thr=nms_iou_thr,
            max_per_img=max_per_img, nms=nms)

    def forward(self, feats: Sequence[Tensor]) -> tuple[list[Tensor], ...]:
        """Per level ``cls_logits`` (B, C, H, W), ``box_deltas`` (B, 4, H, W), ``loc_logits``
        (B, 1, H, W) and ``shapes`` (B, 2, H, W)."""
        outputs: tuple[list[Tensor], ...] = ([], [], [], [])
        for x in feats:
            cls_feat, reg_feat = self.cls_convs(x), self.reg_convs(x)
            loc, shape = self.guide(cls_feat, reg_feat)
            cls_logits = self.cls_logits(self.adapt_cls(cls_feat, shape))
            box_deltas = self.box_deltas(self.adapt_reg(reg_feat, shape))
            for out, value in zip(outputs, (cls_logits, box_deltas, loc, shape)):
                out.append(value)
        return outputs

    def loss_by_outputs(
        self, cls_logits: Sequence[Tensor], box_deltas: Sequence[Tensor],
        loc_logits: Sequence[Tensor], shapes: Sequence[Tensor], samples: Sequence[DetSample],
    ) -> dict[str, Tensor]:
        """Location and shape losses, then focal and box losses on each image's guided anchors
        that pass the location filter, normalized by the batch's positive anchors."""
        loss_loc, loss_shape = self.guide.loss(loc_logits, shapes, samples)
        anchors, masks = self.guide.anchors_and_masks(loc_logits, shapes)
        anchors, masks = torch.cat(anchors, dim=1), torch.cat(masks, dim=1)
        logits = torch.cat([flatten_level(x, self.num_classes) for x in cls_logits], dim=1)
        deltas = torch.cat([flatten_level(x, 4) for x in box_deltas], dim=1)
        sel_logits, sel_labels, pos_deltas, pos_targets = [], [], [], []
        for i, sample in enumerate(samples):
            keep = torch.nonzero(masks[i]).flatten()
            targets = dense_targets(anchors[i, keep], [sample], self.assigner.assign,
                                    self.num_classes)
            valid, positive = targets.valid[0], targets.positive[0]
            sel_logits.append(logits[i, keep][valid])
            sel_labels.append(targets.labels[0][valid])
            pos_deltas.append(deltas[i, keep][positive].float())
            pos_targets.append(self.box_coder.encode(anchors[i, keep][positive],
                                                     targets.pos_gt_boxes))
        pos_deltas, pos_targets = torch.cat(pos_deltas), torch.cat(pos_targets)
        num_pos = max(pos_deltas.shape[0], 1)
        loss_cls = self.loss_cls(torch.cat(sel_logits), torch.cat(sel_labels), avg_factor=num_pos)
        loss_bbox = self.loss_bbox(pos_deltas, pos_targets, avg_factor=num_pos)
        if pos_deltas.shape[0] == 0:
            loss_bbox = loss_bbox + deltas.sum() * 0.0
        return {"loss_cls": loss_cls, "loss_bbox": loss_bbox, "loss_loc": loss_loc,
                "loss_shape": loss_shape}

    def predict_by_outputs(
        self, cls_logits: Sequence[Tensor], box_deltas: Sequence[Tensor],
        loc_logits: Sequence[Tensor], shapes: Sequence[Tensor], samples: Sequence[DetSample],
    ) -> list[Instances]:
        """Per level the guided anchors that pass the location filter, then RetinaNet's
        threshold / top-k / NMS selection."""
        anchors, masks = self.guide.anchors_and_masks(loc_logits, shapes)
        logits = [flatten_level(x, self.num_classes) for x in cls_logits]
        deltas = [flatten_level(x, 4) for x in box_deltas]
        results = []
        for i, sample in enumerate(samples):
            keep = [m[i] for m in masks]
            results.append(select_detections(
                [a[i][k] for a, k in zip(anchors, keep)],
                [x[i][k] for x, k in zip(logits, keep)],
                [x[i][k] for x, k in zip(deltas, keep)], self._decode, sample.img_shape,
                self.test_settings, scores_are_logits=True))
        return results

    def _decode(self, anchors: Tensor, deltas: Tensor, img_shape: Sequence[int]) -> Tensor:
        return self.box_coder.decode(anchors, deltas.float(), max_shape=img_shape)
