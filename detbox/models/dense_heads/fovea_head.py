"""FoveaBox head (Kong et al., 2020): every location in the central "fovea" of an object
classifies it and regresses its box in log space, relative to the level's base edge."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from functools import partial
from types import MappingProxyType
from typing import Annotated, Any

import torch
from torch import Tensor, nn
from torchvision.ops import clip_boxes_to_image

from detbox.errors import ConfigError
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
from detbox.models.task_modules.box_coders import box_to_distances
from detbox.models.task_modules.point_generator import PointGenerator
from detbox.registry import MODELS, TASK_UTILS
from detbox.structures import DetSample, Instances
from detbox.typecheck import Positive, Probability, Range

__all__ = ["FoveaHead"]

# The paper's settings, read-only so that no caller can change another's defaults.
DEFAULT_ASSIGNER = MappingProxyType({"type": "FoveaAssigner", "sigma": 0.4})
DEFAULT_LOSS_CLS = MappingProxyType({"type": "FocalLoss", "alpha": 0.4, "gamma": 1.5})
DEFAULT_LOSS_BBOX = MappingProxyType({"type": "SmoothL1Loss", "beta": 0.11})
# Box sides are regressed as log(distance / base edge), the ratio clamped to [1/16, 16].
MAX_LOG_RATIO = math.log(16.0)


@MODELS.register
class FoveaHead(WithDetectionSettings, DenseHead, nn.Module):
    """Two conv towers shared over levels; every location (cell centre) predicts C class
    scores and ``log(distance / base_edge)`` to the four sides of its object's box.

    Args:
        num_classes: foreground classes C (one sigmoid per class).
        in_channels: channels of every input level.
        feat_channels: channels inside the towers.
        stacked_convs: 3x3 convs per tower.
        norm: ``None`` (the paper) or a norm after each tower conv.
        strides: feature stride of each level.
        base_edges: per level, the length the box sides are measured in (twice the stride).
        prior_prob: initial foreground probability of the classifier.
        assigner: ``TASK_UTILS`` config; ``FoveaAssigner`` with the levels' scale ranges and
            the fovea size ``sigma`` (0.4).
        loss_cls: focal loss (alpha 0.4, gamma 1.5) over all locations, normalised by the
            positives plus the images.
        loss_bbox: on the positives' log-space sides (smooth L1, beta 0.11).
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
        strides: Sequence[int] = (8, 16, 32, 64, 128),
        base_edges: Sequence[float] = (16, 32, 64, 128, 256),
        prior_prob: Annotated[float, Range(gt=0, lt=1)] = 0.01,
        assigner: Mapping[str, Any] | Any = DEFAULT_ASSIGNER,
        loss_cls: Mapping[str, Any] | nn.Module = DEFAULT_LOSS_CLS,
        loss_bbox: Mapping[str, Any] | nn.Module = DEFAULT_LOSS_BBOX,
        score_thr: Annotated[float, Probability] = 0.05,
        nms_pre: Annotated[int, Range(ge=-1)] = 1000,
        nms_iou_thr: Annotated[float, Probability] = 0.5,
        max_per_img: Annotated[int, Positive] = 100,
        nms: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if len(base_edges) != len(strides):
            raise ConfigError(f"FoveaHead got {len(base_edges)} base edges for "
                              f"{len(strides)} strides")
        self.num_classes = num_classes
        self.point_generator = PointGenerator(strides=strides)
        self.base_edges = [float(e) for e in base_edges]
        self.assigner = TASK_UTILS.build(assigner)
        self.loss_cls = MODELS.build(loss_cls)
        self.loss_bbox = MODELS.build(loss_bbox)
        self.test_settings = DetectionSettings(
            score_thr=score_thr, nms_pre=nms_pre, nms_iou_thr=nms_iou_thr,
            max_per_img=max_per_img, nms=nms)
        self.cls_convs, self.reg_convs, tower_out = cls_reg_towers(
            in_channels, feat_channels, stacked_convs, norm)
        self.cls_logits = nn.Conv2d(tower_out, num_classes, 3, padding=1)
        self.bbox_reg = nn.Conv2d(tower_out, 4, 3, padding=1)
        init_dense_head(self, self.cls_logits, prior_prob)

    def forward(self, feats: Sequence[Tensor]) -> tuple[list[Tensor], list[Tensor]]:
        """Raw outputs per level: ``cls_logits`` (B, C, H_l, W_l) and ``bbox_reg``
        (B, 4, H_l, W_l), ``log(side distance / base edge)`` as (left, top, right, bottom)."""
        cls_logits = [self.cls_logits(self.cls_convs(x)) for x in feats]
        bbox_reg = [self.bbox_reg(self.reg_convs(x)) for x in feats]
        return cls_logits, bbox_reg

    def points(self, cls_logits: Sequence[Tensor]) -> list[Tensor]:
        """Per level (H_l * W_l, 3): the cell centres ``(x, y)`` and the level's base edge."""
        sizes = [x.shape[-2:] for x in cls_logits]
        points = self.point_generator.grid_points(sizes, device=cls_logits[0].device)
        return [torch.cat([p, p.new_full((len(p), 1), edge)], dim=1)
                for p, edge in zip(points, self.base_edges)]

    def loss_by_outputs(
        self, cls_logits: Sequence[Tensor], bbox_reg: Sequence[Tensor],
        samples: Sequence[DetSample],
    ) -> dict[str, Tensor]:
        """Focal loss over all non-ignored locations, divided by positives + images (the
        paper's normaliser); box loss over the positives' log-space sides, divided by the
        positives. Without positives ``loss_bbox`` is an exact zero in the graph."""
        level_points = self.points(cls_logits)
        points = torch.cat(level_points)
        assign = partial(self.assigner.assign, num_level_points=[len(p) for p in level_points])
        targets = dense_targets(points[:, :2], samples, assign, self.num_classes)
        positive = targets.positive
        logits = flatten_levels(cls_logits, self.num_classes)
        loss_cls = self.loss_cls(logits[targets.valid], targets.labels[targets.valid],
                                 avg_factor=positive.sum().float() + len(samples))
        pos_points = points.expand(len(samples), -1, -1)[positive]
        ratios = box_to_distances(pos_points[:, :2], targets.pos_gt_boxes) / pos_points[:, 2:]
        log_targets = ratios.clamp(min=1 / 16, max=16).log()
        pos_reg = flatten_levels(bbox_reg, 4)[positive].float()
        loss_bbox = self.loss_bbox(pos_reg, log_targets, avg_factor=targets.num_pos)
        return {"loss_cls": loss_cls, "loss_bbox": loss_bbox}

    def predict_by_outputs(
        self, cls_logits: Sequence[Tensor], bbox_reg: Sequence[Tensor],
        samples: Sequence[DetSample],
    ) -> list[Instances]:
        """Per level: (location, class) scores above ``score_thr``, the top ``nms_pre`` decoded
        and clipped; then class-wise NMS over all levels and the best ``max_per_img``."""
        points = self.points(cls_logits)
        logits = [flatten_level(x, self.num_classes) for x in cls_logits]
        regs = [flatten_level(x, 4) for x in bbox_reg]
        return [
            select_detections(
                points, [x[i] for x in logits], [x[i] for x in regs], self._decode,
                sample.img_shape, self.test_settings, scores_are_logits=True,
            )
            for i, sample in enumerate(samples)
        ]

    @staticmethod
    def decode_boxes(points: Tensor, reg: Tensor) -> Tensor:
        """(K, 3) points with base edges and (K, 4) log-space sides -> (K, 4) float32 boxes."""
        distances = reg.float().clamp(max=MAX_LOG_RATIO).exp() * points[:, 2:]
        x, y = points[:, 0:1], points[:, 1:2]
        return torch.cat([x - distances[:, 0:1], y - distances[:, 1:2],
                          x + distances[:, 2:3], y + distances[:, 3:4]], dim=1)

    def _decode(self, points: Tensor, reg: Tensor, img_shape: Sequence[int]) -> Tensor:
        """``decode_boxes`` clipped to ``img_shape``."""
        boxes = self.decode_boxes(points, reg)
        return clip_boxes_to_image(boxes, (int(img_shape[0]), int(img_shape[1])))
