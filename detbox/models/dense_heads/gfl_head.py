"""GFL head (Li et al., 2020): a joint class-and-quality score trained with Quality Focal Loss
and box sides as discrete distributions (the "integral" representation) trained with
Distribution Focal Loss, on ATSS's anchors and assigner."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import partial
from types import MappingProxyType
from typing import Annotated, Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.ops import clip_boxes_to_image

from detbox.models.dense_heads.atss_head import anchor_centers
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
from detbox.models.losses.regression_losses import aligned_iou
from detbox.models.task_modules.box_coders import box_to_distances
from detbox.registry import MODELS, TASK_UTILS
from detbox.structures import DetSample, Instances
from detbox.typecheck import Positive, Probability, Range

__all__ = ["GFLHead", "integral_distances"]

# The paper's settings, read-only so that no caller can change another's defaults.
DEFAULT_ANCHOR_GENERATOR = MappingProxyType({
    "type": "AnchorGenerator", "strides": (8, 16, 32, 64, 128), "ratios": (1.0,),
    "octave_base_scale": 8, "scales_per_octave": 1,
})
DEFAULT_ASSIGNER = MappingProxyType({"type": "ATSSAssigner", "topk": 9})
DEFAULT_LOSS_CLS = MappingProxyType({"type": "QualityFocalLoss", "beta": 2.0})
DEFAULT_LOSS_DFL = MappingProxyType({"type": "DistributionFocalLoss", "loss_weight": 0.25})
DEFAULT_LOSS_BBOX = MappingProxyType({"type": "GIoULoss", "loss_weight": 2.0})


def integral_distances(logits: Tensor, reg_max: int) -> Tensor:
    """(N, 4 * (reg_max + 1)) bin logits -> (N, 4) expected distances in bins: the mean of each
    side's softmax distribution over ``0..reg_max``."""
    probs = F.softmax(logits.float().reshape(-1, 4, reg_max + 1), dim=-1)
    bins = torch.arange(reg_max + 1, dtype=probs.dtype, device=probs.device)
    return probs @ bins


@MODELS.register
class GFLHead(WithDetectionSettings, DenseHead, nn.Module):
    """Two GN conv towers shared over levels; each location's anchor centre predicts C
    quality-aware class scores and, per box side, a distribution over ``reg_max + 1`` distance
    bins (in strides) whose mean is the distance.

    Args:
        num_classes: foreground classes C.
        in_channels: channels of every input level.
        feat_channels: channels inside the towers.
        stacked_convs: 3x3 convs per tower.
        norm: norm after each tower conv.
        reg_max: the largest distance bin, in strides (16: sides up to 16 strides away).
        prior_prob: initial score of the classifier.
        anchor_generator, assigner: ``TASK_UTILS`` configs (or objects); the anchors serve the
            assigner, their centres are the points the sides are measured from.
        loss_cls: ``QualityFocalLoss``; targets: the positives' IoU at their class.
        loss_bbox: on the positives' decoded boxes; loss_dfl: on their side distributions.
            Both weighted by the positive's highest predicted score (detached).
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
        norm: str | None = "GN",
        reg_max: Annotated[int, Positive] = 16,
        prior_prob: Annotated[float, Range(gt=0, lt=1)] = 0.01,
        anchor_generator: Mapping[str, Any] | Any = DEFAULT_ANCHOR_GENERATOR,
        assigner: Mapping[str, Any] | Any = DEFAULT_ASSIGNER,
        loss_cls: Mapping[str, Any] | nn.Module = DEFAULT_LOSS_CLS,
        loss_dfl: Mapping[str, Any] | nn.Module = DEFAULT_LOSS_DFL,
        loss_bbox: Mapping[str, Any] | nn.Module = DEFAULT_LOSS_BBOX,
        score_thr: Annotated[float, Probability] = 0.05,
        nms_pre: Annotated[int, Range(ge=-1)] = 1000,
        nms_iou_thr: Annotated[float, Probability] = 0.6,
        max_per_img: Annotated[int, Positive] = 100,
        nms: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.reg_max = reg_max
        self.anchor_generator = TASK_UTILS.build(anchor_generator)
        if self.anchor_generator.num_anchors != 1:
            raise ValueError("GFLHead measures box sides from one anchor centre per location; "
                             f"got {self.anchor_generator.num_anchors} anchors per location")
        self.assigner = TASK_UTILS.build(assigner)
        self.loss_cls = MODELS.build(loss_cls)
        self.loss_dfl = MODELS.build(loss_dfl)
        self.loss_bbox = MODELS.build(loss_bbox)
        self.test_settings = DetectionSettings(
            score_thr=score_thr, nms_pre=nms_pre, nms_iou_thr=nms_iou_thr,
            max_per_img=max_per_img, nms=nms)
        self.cls_convs, self.reg_convs, tower_out = cls_reg_towers(
            in_channels, feat_channels, stacked_convs, norm)
        self.cls_logits = nn.Conv2d(tower_out, num_classes, 3, padding=1)
        self.bbox_dist = nn.Conv2d(tower_out, 4 * (reg_max + 1), 3, padding=1)
        self.scales = nn.ModuleList([Scale(1.0) for _ in self.anchor_generator.strides])
        init_dense_head(self, self.cls_logits, prior_prob)

    def forward(self, feats: Sequence[Tensor]) -> tuple[list[Tensor], list[Tensor]]:
        """Raw outputs per level: ``cls_logits`` (B, C, H_l, W_l) and ``bbox_dist``
        (B, 4 * (reg_max + 1), H_l, W_l) bin logits, side-major (left, top, right, bottom)."""
        cls_logits, bbox_dist = [], []
        for scale, x in zip(self.scales, feats):
            cls_logits.append(self.cls_logits(self.cls_convs(x)))
            bbox_dist.append(scale(self.bbox_dist(self.reg_convs(x))))
        return cls_logits, bbox_dist

    def priors(self, level_anchors: Sequence[Tensor]) -> list[Tensor]:
        """Per level (N_l, 5): the anchors with their level's stride as a fifth column, so that
        decoding needs no level index."""
        return [torch.cat([a, torch.full_like(a[:, :1], float(s))], dim=1)
                for a, s in zip(level_anchors, self.anchor_generator.strides)]

    def _anchor_strides(self, level_anchors: Sequence[Tensor]) -> Tensor:
        return torch.cat([a.new_full((len(a),), float(s))
                          for a, s in zip(level_anchors, self.anchor_generator.strides)])

    def loss_by_outputs(
        self, cls_logits: Sequence[Tensor], bbox_dist: Sequence[Tensor],
        samples: Sequence[DetSample],
    ) -> dict[str, Tensor]:
        """QFL over all non-ignored anchors (normalised by the positives); GIoU and DFL over
        the positives, weighted by their detached best class score and normalised by the
        weights' sum. Without positives the last two are exact zeros in the graph."""
        level_anchors = self.anchors(cls_logits)
        anchors = torch.cat(level_anchors)
        assign = partial(self.assigner.assign, num_level_anchors=[len(a) for a in level_anchors])
        targets = dense_targets(anchors, samples, assign, self.num_classes)
        positive, num_pos = targets.positive, targets.num_pos
        batch = len(samples)
        strides = self._anchor_strides(level_anchors).expand(batch, -1)[positive][:, None]
        centers = anchor_centers(anchors).expand(batch, -1, -1)[positive] / strides
        pos_logits = flatten_levels(bbox_dist, 4 * (self.reg_max + 1))[positive]
        gt = targets.pos_gt_boxes / strides  # boxes in strides, like the distances
        pred = self._boxes(centers, integral_distances(pos_logits, self.reg_max))
        logits = flatten_levels(cls_logits, self.num_classes)
        quality = torch.zeros_like(logits, dtype=torch.float32)
        quality[positive, targets.labels[positive]] = aligned_iou(pred.detach(), gt)
        valid = targets.valid
        loss_cls = self.loss_cls(logits[valid], quality[valid], avg_factor=num_pos)
        weight = logits[positive].detach().float().sigmoid().max(dim=1).values
        weight_sum = weight.sum().clamp(min=1e-6)
        loss_bbox = self.loss_bbox(pred, gt, weight=weight, avg_factor=weight_sum)
        sides = box_to_distances(centers, gt).clamp(min=0, max=self.reg_max - 0.01)
        side_weight = weight[:, None].expand(-1, 4).reshape(-1)
        loss_dfl = self.loss_dfl(pos_logits.float().reshape(-1, self.reg_max + 1),
                                 sides.reshape(-1), weight=side_weight, avg_factor=4 * weight_sum)
        return {"loss_cls": loss_cls, "loss_bbox": loss_bbox, "loss_dfl": loss_dfl}

    @staticmethod
    def _boxes(centers: Tensor, distances: Tensor) -> Tensor:
        return torch.cat([centers - distances[:, :2], centers + distances[:, 2:]], dim=1)

    def predict_by_outputs(
        self, cls_logits: Sequence[Tensor], bbox_dist: Sequence[Tensor],
        samples: Sequence[DetSample],
    ) -> list[Instances]:
        """Per level: (anchor, class) scores above ``score_thr``, the top ``nms_pre`` decoded
        (integral distances times the stride, from the anchor centre) and clipped; then
        class-wise NMS over all levels and the best ``max_per_img``."""
        priors = self.priors(self.anchors(cls_logits))
        logits = [flatten_level(x, self.num_classes) for x in cls_logits]
        dists = [flatten_level(x, 4 * (self.reg_max + 1)) for x in bbox_dist]
        return [
            select_detections(
                priors, [x[i] for x in logits], [x[i] for x in dists], self._decode,
                sample.img_shape, self.test_settings, scores_are_logits=True,
            )
            for i, sample in enumerate(samples)
        ]

    def decode_boxes(self, priors: Tensor, logits: Tensor) -> Tensor:
        """(K, 5) anchors with their stride and (K, 4 * (reg_max + 1)) bin logits -> (K, 4)
        float32 boxes: integral distances times the stride, from the anchor centre."""
        distances = integral_distances(logits, self.reg_max) * priors[:, 4:]
        return self._boxes(anchor_centers(priors[:, :4]), distances)

    def _decode(self, priors: Tensor, logits: Tensor, img_shape: Sequence[int]) -> Tensor:
        """``decode_boxes`` clipped to ``img_shape``."""
        boxes = self.decode_boxes(priors, logits)
        return clip_boxes_to_image(boxes, (int(img_shape[0]), int(img_shape[1])))
