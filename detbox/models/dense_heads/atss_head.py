"""ATSS head (Zhang et al., 2020): RetinaNet's towers with one anchor per location, the adaptive
training sample selection assigner, a GIoU box loss and FCOS's centre-ness branch."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import partial
from types import MappingProxyType
from typing import Annotated, Any

import torch
from torch import Tensor, nn

from detbox.models.dense_heads.centerness import centerness_losses, centerness_targets
from detbox.models.dense_heads.conv_tower import cls_reg_towers, init_dense_head
from detbox.models.dense_heads.dense_head import DenseHead
from detbox.models.dense_heads.dense_utils import (
    dense_targets,
    flatten_level,
    flatten_levels,
    select_detections,
)
from detbox.models.dense_heads.detection_settings import (
    DetectionSettings,
    WithDetectionSettings,
)
from detbox.models.layers.scale import Scale
from detbox.models.task_modules.box_coders import box_to_distances
from detbox.registry import MODELS, TASK_UTILS
from detbox.structures import DetSample, Instances
from detbox.typecheck import Positive, Probability, Range

__all__ = ["ATSSHead", "anchor_centers"]

# The paper's settings, read-only so that no caller can change another's defaults.
DEFAULT_ANCHOR_GENERATOR = MappingProxyType({
    "type": "AnchorGenerator", "strides": (8, 16, 32, 64, 128), "ratios": (1.0,),
    "octave_base_scale": 8, "scales_per_octave": 1,
})
DEFAULT_ASSIGNER = MappingProxyType({"type": "ATSSAssigner", "topk": 9})
DEFAULT_BOX_CODER = MappingProxyType(
    {"type": "DeltaXYWHBoxCoder", "target_stds": (0.1, 0.1, 0.2, 0.2)})
DEFAULT_LOSS_CLS = MappingProxyType({"type": "FocalLoss", "alpha": 0.25, "gamma": 2.0})
DEFAULT_LOSS_BBOX = MappingProxyType({"type": "GIoULoss", "loss_weight": 2.0})
DEFAULT_LOSS_CENTERNESS = MappingProxyType({"type": "CrossEntropyLoss", "use_sigmoid": True})


def anchor_centers(anchors: Tensor) -> Tensor:
    """(N, 4) xyxy -> (N, 2) centres."""
    return (anchors[:, :2] + anchors[:, 2:]) / 2


@MODELS.register
class ATSSHead(WithDetectionSettings, DenseHead, nn.Module):
    """Two GN conv towers shared over levels; one square anchor per location classifies itself
    and regresses deltas to its box; centre-ness (from the regression tower) multiplies the
    class score at inference.

    Args:
        num_classes: foreground classes C (one sigmoid per class).
        in_channels: channels of every input level.
        feat_channels: channels inside the towers.
        stacked_convs: 3x3 convs per tower.
        norm: norm after each tower conv.
        prior_prob: initial foreground probability of the classifier.
        anchor_generator, assigner, box_coder: ``TASK_UTILS`` configs (or objects); one anchor
            per location of size 8 strides, ``ATSSAssigner(topk=9)``.
        loss_cls: on all anchors' class logits, normalised by the number of positives.
        loss_bbox: on the positives' decoded boxes, weighted by their centre-ness targets.
        loss_centerness: on the positives' centre-ness logits.
        score_thr, nms_pre, nms_iou_thr, max_per_img, nms: test-time selection on the class
            probability times centre-ness, see ``DetectionSettings``
            (``nms=dict(type='soft_nms', ...)``: Soft-NMS).
    """

    def __init__(
        self,
        *,
        num_classes: Annotated[int, Positive],
        in_channels: Annotated[int, Positive],
        feat_channels: Annotated[int, Positive] = 256,
        stacked_convs: Annotated[int, Range(ge=0)] = 4,
        norm: str | None = "GN",
        prior_prob: Annotated[float, Range(gt=0, lt=1)] = 0.01,
        anchor_generator: Mapping[str, Any] | Any = DEFAULT_ANCHOR_GENERATOR,
        assigner: Mapping[str, Any] | Any = DEFAULT_ASSIGNER,
        box_coder: Mapping[str, Any] | Any = DEFAULT_BOX_CODER,
        loss_cls: Mapping[str, Any] | nn.Module = DEFAULT_LOSS_CLS,
        loss_bbox: Mapping[str, Any] | nn.Module = DEFAULT_LOSS_BBOX,
        loss_centerness: Mapping[str, Any] | nn.Module = DEFAULT_LOSS_CENTERNESS,
        score_thr: Annotated[float, Probability] = 0.05,
        nms_pre: Annotated[int, Range(ge=-1)] = 1000,
        nms_iou_thr: Annotated[float, Probability] = 0.6,
        max_per_img: Annotated[int, Positive] = 100,
        nms: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.anchor_generator = TASK_UTILS.build(anchor_generator)
        self.assigner = TASK_UTILS.build(assigner)
        self.box_coder = TASK_UTILS.build(box_coder)
        self.loss_cls = MODELS.build(loss_cls)
        self.loss_bbox = MODELS.build(loss_bbox)
        self.loss_centerness = MODELS.build(loss_centerness)
        self.test_settings = DetectionSettings(
            score_thr=score_thr, nms_pre=nms_pre, nms_iou_thr=nms_iou_thr,
            max_per_img=max_per_img, nms=nms)
        num_anchors = self.anchor_generator.num_anchors
        self.num_anchors = num_anchors
        self.cls_convs, self.reg_convs, tower_out = cls_reg_towers(
            in_channels, feat_channels, stacked_convs, norm)
        self.cls_logits = nn.Conv2d(tower_out, num_anchors * num_classes, 3, padding=1)
        self.box_deltas = nn.Conv2d(tower_out, num_anchors * 4, 3, padding=1)
        self.centerness = nn.Conv2d(tower_out, num_anchors, 3, padding=1)
        self.scales = nn.ModuleList([Scale(1.0) for _ in self.anchor_generator.strides])
        init_dense_head(self, self.cls_logits, prior_prob)

    def forward(self, feats: Sequence[Tensor]) -> tuple[list[Tensor], list[Tensor], list[Tensor]]:
        """Raw outputs per level: ``cls_logits`` (B, A * C, H_l, W_l), ``box_deltas``
        (B, A * 4, H_l, W_l) and ``centerness`` logits (B, A, H_l, W_l), for one
        (B, in_channels, H_l, W_l) map per level."""
        cls_logits, box_deltas, centerness = [], [], []
        for scale, x in zip(self.scales, feats):
            cls_feat, reg_feat = self.cls_convs(x), self.reg_convs(x)
            cls_logits.append(self.cls_logits(cls_feat))
            box_deltas.append(scale(self.box_deltas(reg_feat)))
            centerness.append(self.centerness(reg_feat))
        return cls_logits, box_deltas, centerness

    def loss_by_outputs(
        self, cls_logits: Sequence[Tensor], box_deltas: Sequence[Tensor],
        centerness: Sequence[Tensor], samples: Sequence[DetSample],
    ) -> dict[str, Tensor]:
        """Focal loss over all non-ignored anchors (normalised by the positives), box and
        centre-ness losses over the positives (see ``centerness_losses``); with no positive in
        the batch the last two are exact zeros that still belong to the graph."""
        level_anchors = self.anchors(cls_logits)
        anchors = torch.cat(level_anchors)
        assign = partial(self.assigner.assign, num_level_anchors=[len(a) for a in level_anchors])
        targets = dense_targets(anchors, samples, assign, self.num_classes)
        positive, num_pos = targets.positive, targets.num_pos
        logits = flatten_levels(cls_logits, self.num_classes)
        loss_cls = self.loss_cls(logits[targets.valid], targets.labels[targets.valid],
                                 avg_factor=num_pos)
        pos_anchors = anchors.expand(len(samples), -1, -1)[positive]
        pos_deltas = flatten_levels(box_deltas, 4)[positive].float()
        pos_ctr = flatten_levels(centerness, 1)[positive][:, 0]
        pos_gt = targets.pos_gt_boxes
        ctr_targets = centerness_targets(box_to_distances(anchor_centers(pos_anchors), pos_gt))
        loss_bbox, loss_ctr = centerness_losses(
            self.loss_bbox, self.loss_centerness, self.box_coder.decode(pos_anchors, pos_deltas),
            pos_gt, pos_ctr, ctr_targets, num_pos)
        return {"loss_cls": loss_cls, "loss_bbox": loss_bbox, "loss_centerness": loss_ctr}

    def predict_by_outputs(
        self, cls_logits: Sequence[Tensor], box_deltas: Sequence[Tensor],
        centerness: Sequence[Tensor], samples: Sequence[DetSample],
    ) -> list[Instances]:
        """Per level: (anchor, class) scores ``sigmoid(cls) * sigmoid(centerness)`` above
        ``score_thr``, the top ``nms_pre`` decoded and clipped; then class-wise NMS over all
        levels and the best ``max_per_img``.

        Returns:
            One Instances per image with ``boxes`` (K, 4) in ``img_shape`` pixels, ``labels``
            and ``scores``, sorted by score.
        """
        anchors = self.anchors(cls_logits)
        scores = [self.scores(flatten_level(c, self.num_classes), flatten_level(q, 1))
                  for c, q in zip(cls_logits, centerness)]
        deltas = [flatten_level(x, 4) for x in box_deltas]
        return [
            select_detections(
                anchors, [x[i] for x in scores], [x[i] for x in deltas], self._decode,
                sample.img_shape, self.test_settings,
            )
            for i, sample in enumerate(samples)
        ]

    @staticmethod
    def scores(cls_logits: Tensor, centerness: Tensor) -> Tensor:
        """(..., C) class logits and (..., 1) centre-ness logits -> (..., C) detection scores."""
        return torch.sigmoid(cls_logits.float()) * torch.sigmoid(centerness.float())

    def _decode(self, anchors: Tensor, deltas: Tensor, img_shape: Sequence[int]) -> Tensor:
        """(K, 4) anchors and deltas -> (K, 4) float32 boxes clipped to ``img_shape``."""
        return self.box_coder.decode(anchors, deltas.float(), max_shape=img_shape)
