"""FCOS head (Tian et al., 2019): per-location class scores, distances to the box sides and
centre-ness, with no anchors."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import partial
from types import MappingProxyType
from typing import Annotated, Any, Literal

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
from detbox.registry import MODELS, TASK_UTILS
from detbox.structures import DetSample, Instances
from detbox.typecheck import Positive, Probability, Range

__all__ = ["FCOSHead"]

# The paper's settings, read-only so that no caller can change another's defaults.
DEFAULT_POINT_GENERATOR = MappingProxyType(
    {"type": "PointGenerator", "strides": (8, 16, 32, 64, 128), "offset": 0.5})
DEFAULT_ASSIGNER = MappingProxyType({"type": "FCOSAssigner"})
DEFAULT_LOSS_CLS = MappingProxyType({"type": "FocalLoss", "alpha": 0.25, "gamma": 2.0})
DEFAULT_LOSS_BBOX = MappingProxyType({"type": "IoULoss", "mode": "log"})
DEFAULT_LOSS_CENTERNESS = MappingProxyType({"type": "CrossEntropyLoss", "use_sigmoid": True})


@MODELS.register
class FCOSHead(WithDetectionSettings, DenseHead, nn.Module):
    """Two conv towers shared over levels; every location of every level classifies itself and,
    when positive, regresses its distances to the four sides of its object's box.

    The targets come from the ``FCOSAssigner`` (a location inside a GT box whose size suits the
    level); a third output, centre-ness, learns how central the location is in that box and
    multiplies the class score at inference.

    Args:
        num_classes: foreground classes C (one sigmoid per class).
        in_channels: channels of every input level.
        feat_channels: channels inside the towers.
        stacked_convs: 3x3 convs per tower.
        norm: norm after each tower conv (``'GN'``: the "gn-head" of the improved FCOS).
        conv_bias: tower conv bias; None: only without a norm (torchvision's FCOS keeps it).
        prior_prob: initial foreground probability of the classifier.
        centerness_on_reg: predict centre-ness from the regression tower (the later paper
            version) instead of the classification tower.
        norm_on_bbox: regress distances in units of the level's stride as ``relu(x) * stride``
            (the later version); otherwise in pixels as ``exp(x)``.
        scale_per_level: a learnable scalar per level multiplies the regression (off for
            torchvision's FCOS, which has none).
        point_generator, assigner, box_coder: ``TASK_UTILS`` configs (or objects).
        loss_cls: on all locations' class logits, normalised by the number of positives.
        loss_bbox: on the positives' decoded boxes (``IoULoss``, ``GIoULoss``), weighted by
            their centre-ness targets.
        loss_centerness: on the positives' centre-ness logits.
        score_mode: detection score from class probability p and centre-ness c: ``'product'``
            ``p * c`` or ``'sqrt'`` ``sqrt(p * c)`` (torchvision's); thresholds apply to it.
        score_thr, nms_pre, nms_iou_thr, max_per_img, nms: test-time selection on those
            scores, see ``DetectionSettings`` (``nms=dict(type='soft_nms', ...)``: Soft-NMS).
    """

    def __init__(
        self,
        *,
        num_classes: Annotated[int, Positive],
        in_channels: Annotated[int, Positive],
        feat_channels: Annotated[int, Positive] = 256,
        stacked_convs: Annotated[int, Range(ge=0)] = 4,
        norm: str | None = "GN",
        conv_bias: bool | None = None,
        prior_prob: Annotated[float, Range(gt=0, lt=1)] = 0.01,
        centerness_on_reg: bool = False,
        norm_on_bbox: bool = False,
        scale_per_level: bool = True,
        point_generator: Mapping[str, Any] | Any = DEFAULT_POINT_GENERATOR,
        assigner: Mapping[str, Any] | Any = DEFAULT_ASSIGNER,
        box_coder: Mapping[str, Any] | Any = MappingProxyType({"type": "DistancePointBoxCoder"}),
        loss_cls: Mapping[str, Any] | nn.Module = DEFAULT_LOSS_CLS,
        loss_bbox: Mapping[str, Any] | nn.Module = DEFAULT_LOSS_BBOX,
        loss_centerness: Mapping[str, Any] | nn.Module = DEFAULT_LOSS_CENTERNESS,
        score_mode: Literal["product", "sqrt"] = "product",
        score_thr: Annotated[float, Probability] = 0.05,
        nms_pre: Annotated[int, Range(ge=-1)] = 1000,
        nms_iou_thr: Annotated[float, Probability] = 0.5,
        max_per_img: Annotated[int, Positive] = 100,
        nms: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.point_generator = TASK_UTILS.build(point_generator)
        self.assigner = TASK_UTILS.build(assigner)
        self.box_coder = TASK_UTILS.build(box_coder)
        self.loss_cls = MODELS.build(loss_cls)
        self.loss_bbox = MODELS.build(loss_bbox)
        self.loss_centerness = MODELS.build(loss_centerness)
        self.centerness_on_reg = centerness_on_reg
        self.norm_on_bbox = norm_on_bbox
        self.score_mode = score_mode
        self.test_settings = DetectionSettings(
            score_thr=score_thr, nms_pre=nms_pre, nms_iou_thr=nms_iou_thr,
            max_per_img=max_per_img, nms=nms)
        self.cls_convs, self.reg_convs, tower_out = cls_reg_towers(
            in_channels, feat_channels, stacked_convs, norm, conv_bias)
        self.cls_logits = nn.Conv2d(tower_out, num_classes, 3, padding=1)
        self.bbox_reg = nn.Conv2d(tower_out, 4, 3, padding=1)
        self.centerness = nn.Conv2d(tower_out, 1, 3, padding=1)
        self.scales = nn.ModuleList(
            [Scale(1.0) for _ in self.point_generator.strides]) if scale_per_level else None
        init_dense_head(self, self.cls_logits, prior_prob)

    def forward(self, feats: Sequence[Tensor]) -> tuple[list[Tensor], list[Tensor], list[Tensor]]:
        """Raw outputs per level.

        Args:
            feats: one (B, in_channels, H_l, W_l) map per level.

        Returns:
            ``cls_logits`` per level (B, C, H_l, W_l); ``distances`` (B, 4, H_l, W_l) float32
            ``(left, top, right, bottom)`` in pixels, >= 0; ``centerness`` (B, 1, H_l, W_l)
            logits.
        """
        cls_logits, distances, centerness = [], [], []
        for level, x in enumerate(feats):
            cls_feat, reg_feat = self.cls_convs(x), self.reg_convs(x)
            cls_logits.append(self.cls_logits(cls_feat))
            reg = self.bbox_reg(reg_feat).float()
            if self.scales is not None:
                reg = self.scales[level](reg)
            if self.norm_on_bbox:
                reg = reg.clamp(min=0) * self.point_generator.strides[level]
            else:
                reg = reg.exp()
            distances.append(reg)
            centerness.append(self.centerness(reg_feat if self.centerness_on_reg else cls_feat))
        return cls_logits, distances, centerness

    def points(self, cls_logits: Sequence[Tensor]) -> list[Tensor]:
        """Per-level (H_l * W_l, 2) points for outputs of these spatial sizes."""
        sizes = [x.shape[-2:] for x in cls_logits]
        return self.point_generator.grid_points(sizes, device=cls_logits[0].device)

    def loss_by_outputs(
        self, cls_logits: Sequence[Tensor], distances: Sequence[Tensor],
        centerness: Sequence[Tensor], samples: Sequence[DetSample],
    ) -> dict[str, Tensor]:
        """Focal loss over all non-ignored locations (normalised by the positives), box loss
        and centre-ness loss over the positives (see ``centerness_losses``). With no positive
        in the batch the last two are exact zeros that still belong to the graph.
        """
        level_points = self.points(cls_logits)
        points = torch.cat(level_points)
        assign = partial(self.assigner.assign, num_level_points=[len(p) for p in level_points],
                         strides=self.point_generator.strides)
        targets = dense_targets(points, samples, assign, self.num_classes)
        positive, num_pos = targets.positive, targets.num_pos
        logits = flatten_levels(cls_logits, self.num_classes)
        loss_cls = self.loss_cls(logits[targets.valid], targets.labels[targets.valid],
                                 avg_factor=num_pos)
        pos_points = points.expand(len(samples), -1, -1)[positive]
        pos_dist = flatten_levels(distances, 4)[positive].float()
        pos_ctr = flatten_levels(centerness, 1)[positive][:, 0]
        pos_gt = targets.pos_gt_boxes
        ctr_targets = centerness_targets(self.box_coder.encode(pos_points, pos_gt))
        loss_bbox, loss_ctr = centerness_losses(
            self.loss_bbox, self.loss_centerness, self.box_coder.decode(pos_points, pos_dist),
            pos_gt, pos_ctr, ctr_targets, num_pos)
        return {"loss_cls": loss_cls, "loss_bbox": loss_bbox, "loss_centerness": loss_ctr}

    def predict_by_outputs(
        self, cls_logits: Sequence[Tensor], distances: Sequence[Tensor],
        centerness: Sequence[Tensor], samples: Sequence[DetSample],
    ) -> list[Instances]:
        """Per level: the (location, class) scores (class probability times centre-ness, see
        ``score_mode``) above ``score_thr``, the top ``nms_pre`` decoded and clipped; then
        class-wise NMS over all levels and the best ``max_per_img``.

        Returns:
            One Instances per image with ``boxes`` (K, 4) in ``img_shape`` pixels, ``labels``
            and ``scores``, sorted by score.
        """
        points = self.points(cls_logits)
        scores = [self.scores(flatten_level(c, self.num_classes), flatten_level(q, 1))
                  for c, q in zip(cls_logits, centerness)]
        dists = [flatten_level(x, 4) for x in distances]
        return [
            select_detections(
                points, [x[i] for x in scores], [x[i] for x in dists], self._decode,
                sample.img_shape, self.test_settings,
            )
            for i, sample in enumerate(samples)
        ]

    def scores(self, cls_logits: Tensor, centerness: Tensor) -> Tensor:
        """(..., C) class logits and (..., 1) centre-ness logits -> (..., C) detection scores."""
        scores = torch.sigmoid(cls_logits.float()) * torch.sigmoid(centerness.float())
        return scores.sqrt() if self.score_mode == "sqrt" else scores

    def _decode(self, points: Tensor, distances: Tensor, img_shape: Sequence[int]) -> Tensor:
        """(K, 2) points and (K, 4) distances -> (K, 4) float32 boxes clipped to ``img_shape``."""
        return self.box_coder.decode(points, distances.float(), max_shape=img_shape)
