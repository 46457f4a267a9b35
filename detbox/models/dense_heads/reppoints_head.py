"""RepPoints head (Yang et al., 2019, "RepPoints: Point Set Representation for Object Detection").

At every location of every level the head predicts a set of ``num_points`` points, twice:

1. *init* points from the regression tower, as offsets (in strides) from the location;
2. *refined* points: the init points plus a correction predicted by a deformable conv that
   samples the features *at the init points*; the classifier samples them the same way.

A point set becomes a box by a conversion (``min-max``, ``partial min-max`` over the first four
points, or ``moment``: mean +- std scaled by a learned ``exp(transfer)``). Training: the init
boxes are regressed for the points a ``PointAssigner`` gives to each object (the point nearest
its centre on its level); the refined boxes and the classifier use a ``MaxIoUAssigner`` on the
(detached) init boxes. Box losses compare boxes divided by ``point_base_scale * stride``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Annotated, Any, Literal

import torch
from torch import Tensor, nn
from torchvision.ops import DeformConv2d, clip_boxes_to_image

from detbox.models.dense_heads.conv_tower import cls_reg_towers
from detbox.models.dense_heads.dense_head import DenseHead
from detbox.models.dense_heads.dense_utils import (
    DenseTargets,
    dense_targets,
    flatten_level,
    flatten_levels,
    select_detections,
)
from detbox.models.dense_heads.detection_settings import (
    DetectionSettings,
    WithDetectionSettings,
)
from detbox.registry import MODELS, TASK_UTILS
from detbox.structures import DetSample, Instances
from detbox.typecheck import Positive, Probability, Range

__all__ = ["RepPointsHead", "grid_points", "points_to_boxes"]

Transform = Literal["minmax", "partial_minmax", "moment"]

DEFAULT_INIT_ASSIGNER = MappingProxyType({"type": "PointAssigner", "scale": 4, "pos_num": 1})
DEFAULT_REFINE_ASSIGNER = MappingProxyType({
    "type": "MaxIoUAssigner", "pos_iou_thr": 0.5, "neg_iou_thr": 0.4, "min_pos_iou": 0.0,
    "ignore_iof_thr": -1.0,
})
DEFAULT_LOSS_CLS = MappingProxyType({"type": "FocalLoss", "alpha": 0.25, "gamma": 2.0})
DEFAULT_LOSS_INIT = MappingProxyType({"type": "SmoothL1Loss", "beta": 0.11, "loss_weight": 0.5})
DEFAULT_LOSS_REFINE = MappingProxyType({"type": "SmoothL1Loss", "beta": 0.11})


def grid_points(
    feature_sizes: Sequence[Sequence[int]], strides: Sequence[int], device: torch.device | str
) -> list[Tensor]:
    """Per level (H * W, 3) ``(x, y, stride)`` of each cell's top-left corner in image pixels,
    row ``y * W + x`` (the anchor generator's location order, one prior per location)."""
    points = []
    for (height, width), stride in zip(feature_sizes, strides):
        ys, xs = torch.meshgrid(torch.arange(int(height), device=device, dtype=torch.float32),
                                torch.arange(int(width), device=device, dtype=torch.float32),
                                indexing="ij")
        xy = torch.stack([xs, ys], dim=-1).reshape(-1, 2) * stride
        points.append(torch.cat([xy, xy.new_full((xy.shape[0], 1), float(stride))], dim=1))
    return points


def points_to_boxes(points: Tensor, method: Transform, transfer: Tensor | None = None) -> Tensor:
    """(..., 2 * P) point sets as ``(y, x)`` pairs -> (..., 4) xyxy boxes in the same units.

    Args:
        method: ``'minmax'`` (extremes of all points), ``'partial_minmax'`` (of the first
            four), ``'moment'`` (mean -+ std * exp(transfer), the std over the P points).
        transfer: (2,) log-scales of the width and height for ``'moment'``.
    """
    ys, xs = points[..., 0::2], points[..., 1::2]
    if method == "partial_minmax":
        ys, xs = ys[..., :4], xs[..., :4]
    if method in ("minmax", "partial_minmax"):
        return torch.stack([xs.min(-1).values, ys.min(-1).values, xs.max(-1).values,
                            ys.max(-1).values], dim=-1)
    mean_x, mean_y = xs.mean(-1), ys.mean(-1)
    dof = max(xs.shape[-1] - 1, 1)  # the unbiased std
    half_w = ((xs - mean_x[..., None]) ** 2).sum(-1).div(dof).sqrt() * torch.exp(transfer[0])
    half_h = ((ys - mean_y[..., None]) ** 2).sum(-1).div(dof).sqrt() * torch.exp(transfer[1])
    return torch.stack([mean_x - half_w, mean_y - half_h, mean_x + half_w, mean_y + half_h], -1)


def _base_offsets(kernel: int) -> Tensor:
    """(2 * kernel**2,) the (dy, dx) sampling offsets of a plain ``kernel x kernel`` conv."""
    steps = torch.arange(kernel, dtype=torch.float32) - (kernel - 1) / 2
    ys, xs = torch.meshgrid(steps, steps, indexing="ij")
    return torch.stack([ys.flatten(), xs.flatten()], dim=1).flatten()


@MODELS.register
class RepPointsHead(WithDetectionSettings, DenseHead, nn.Module):
    """Classification and two-stage point-set regression on every level, deformable convs
    sampling at the predicted points.

    Args:
        num_classes: foreground classes C (one sigmoid per class).
        in_channels: channels of every input level.
        feat_channels: channels of the towers.
        point_feat_channels: channels of the point convs (deformable and plain).
        stacked_convs: 3x3 convs per tower.
        norm: ``None`` or e.g. ``'GN'`` in the towers.
        num_points: points per set; a square number (the deformable kernel is its root).
        gradient_mul: the fraction of the gradient that flows from the deformable convs'
            offsets back into the init points.
        strides: stride of each level.
        point_base_scale: box-loss normalizer, in strides.
        transform: point set -> box conversion (see :func:`points_to_boxes`).
        moment_mul: the fraction of the gradient the moment transfer receives.
        prior_prob: initial foreground probability of the classifier.
        init_assigner, refine_assigner: ``TASK_UTILS`` configs of the two stages.
        loss_cls, loss_pts_init, loss_pts_refine: ``MODELS`` loss configs.
        score_thr, nms_pre, nms_iou_thr, max_per_img, nms: test-time selection, see
            ``DetectionSettings`` (``nms=dict(type='soft_nms', ...)``: Soft-NMS).
    """

    def __init__(
        self,
        *,
        num_classes: Annotated[int, Positive],
        in_channels: Annotated[int, Positive],
        feat_channels: Annotated[int, Positive] = 256,
        point_feat_channels: Annotated[int, Positive] = 256,
        stacked_convs: Annotated[int, Range(ge=0)] = 3,
        norm: str | None = None,
        num_points: Annotated[int, Positive] = 9,
        gradient_mul: Annotated[float, Probability] = 0.1,
        strides: Sequence[int] = (8, 16, 32, 64, 128),
        point_base_scale: Annotated[float, Positive] = 4.0,
        transform: Transform = "moment",
        moment_mul: Annotated[float, Probability] = 0.01,
        prior_prob: Annotated[float, Range(gt=0, lt=1)] = 0.01,
        init_assigner: Mapping[str, Any] | Any = DEFAULT_INIT_ASSIGNER,
        refine_assigner: Mapping[str, Any] | Any = DEFAULT_REFINE_ASSIGNER,
        loss_cls: Mapping[str, Any] | nn.Module = DEFAULT_LOSS_CLS,
        loss_pts_init: Mapping[str, Any] | nn.Module = DEFAULT_LOSS_INIT,
        loss_pts_refine: Mapping[str, Any] | nn.Module = DEFAULT_LOSS_REFINE,
        score_thr: Annotated[float, Probability] = 0.05,
        nms_pre: Annotated[int, Range(ge=-1)] = 1000,
        nms_iou_thr: Annotated[float, Probability] = 0.5,
        max_per_img: Annotated[int, Positive] = 100,
        nms: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        kernel = math.isqrt(num_points)
        if kernel * kernel != num_points or kernel % 2 == 0:
            raise ValueError(f"RepPointsHead needs num_points = an odd square, got {num_points}")
        self.num_classes = num_classes
        self.num_points = num_points
        self.gradient_mul = gradient_mul
        self.strides = [int(s) for s in strides]
        self.point_base_scale = float(point_base_scale)
        self.transform = transform
        self.moment_mul = moment_mul
        self.init_assigner = TASK_UTILS.build(init_assigner)
        self.refine_assigner = TASK_UTILS.build(refine_assigner)
        self.loss_cls = MODELS.build(loss_cls)
        self.loss_pts_init = MODELS.build(loss_pts_init)
        self.loss_pts_refine = MODELS.build(loss_pts_refine)
        self.test_settings = DetectionSettings(
            score_thr=score_thr, nms_pre=nms_pre, nms_iou_thr=nms_iou_thr,
            max_per_img=max_per_img, nms=nms)
        self.cls_convs, self.reg_convs, tower_out = cls_reg_towers(
            in_channels, feat_channels, stacked_convs, norm)
        pad = kernel // 2
        self.cls_conv = DeformConv2d(tower_out, point_feat_channels, kernel, padding=pad)
        self.cls_logits = nn.Conv2d(point_feat_channels, num_classes, 1)
        self.pts_init_conv = nn.Conv2d(tower_out, point_feat_channels, 3, padding=1)
        self.pts_init_out = nn.Conv2d(point_feat_channels, 2 * num_points, 1)
        self.pts_refine_conv = DeformConv2d(tower_out, point_feat_channels, kernel, padding=pad)
        self.pts_refine_out = nn.Conv2d(point_feat_channels, 2 * num_points, 1)
        self.register_buffer("base_offsets", _base_offsets(kernel).view(1, -1, 1, 1),
                             persistent=False)
        if transform == "moment":
            self.moment_transfer = nn.Parameter(torch.zeros(2))
        self._init_weights(prior_prob)

    def _init_weights(self, prior_prob: float) -> None:
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, DeformConv2d)):
                nn.init.normal_(module.weight, std=0.01)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
        nn.init.constant_(self.cls_logits.bias, -math.log((1 - prior_prob) / prior_prob))

    def forward(self, feats: Sequence[Tensor]) -> tuple[list[Tensor], list[Tensor], list[Tensor]]:
        """Raw outputs per level.

        Returns:
            ``cls_logits`` per level (B, C, H_l, W_l); ``pts_init`` and ``pts_refine`` per
            level (B, 2 * P, H_l, W_l): ``(dy, dx)`` of each point from the location, in strides.
        """
        outputs: tuple[list[Tensor], list[Tensor], list[Tensor]] = ([], [], [])
        for x in feats:
            for out, value in zip(outputs, self._forward_level(x)):
                out.append(value)
        return outputs

    def _forward_level(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        cls_feat, pts_feat = self.cls_convs(x), self.reg_convs(x)
        pts_init = self.pts_init_out(torch.relu(self.pts_init_conv(pts_feat)))
        scaled = (1 - self.gradient_mul) * pts_init.detach() + self.gradient_mul * pts_init
        offsets = scaled - self.base_offsets.to(scaled.dtype)
        cls_logits = self.cls_logits(torch.relu(self.cls_conv(cls_feat, offsets)))
        refine = self.pts_refine_out(torch.relu(self.pts_refine_conv(pts_feat, offsets)))
        return cls_logits, pts_init, refine + pts_init.detach()

    def points(self, cls_logits: Sequence[Tensor]) -> list[Tensor]:
        """Per-level (H_l * W_l, 3) ``(x, y, stride)`` locations of outputs of these sizes."""
        sizes = [x.shape[-2:] for x in cls_logits]
        return grid_points(sizes, self.strides[: len(sizes)], cls_logits[0].device)

    def boxes(self, points: Tensor, pts: Tensor) -> Tensor:
        """(N, 3) locations and (..., N, 2 * P) point offsets -> (..., N, 4) boxes in pixels."""
        transfer = None
        if self.transform == "moment":
            transfer = (self.moment_transfer * self.moment_mul
                        + self.moment_transfer.detach() * (1 - self.moment_mul))
        boxes = points_to_boxes(pts.float(), self.transform, transfer)
        return boxes * points[:, 2:3] + points[:, :2].repeat(1, 2)

    def loss_by_outputs(
        self, cls_logits: Sequence[Tensor], pts_init: Sequence[Tensor],
        pts_refine: Sequence[Tensor], samples: Sequence[DetSample],
    ) -> dict[str, Tensor]:
        """Focal loss on the refine stage's labels; init and refined box losses on each stage's
        positives, normalized by their number (at least 1)."""
        points = torch.cat(self.points(cls_logits))
        width = 2 * self.num_points
        logits = flatten_levels(cls_logits, self.num_classes)  # (B, N, C)
        init_boxes = self.boxes(points, flatten_levels(pts_init, width))  # (B, N, 4)
        refine_boxes = self.boxes(points, flatten_levels(pts_refine, width))
        scale = (points[:, 2] * self.point_base_scale)[None, :, None].expand_as(init_boxes)

        init_targets = dense_targets(points, samples, self.init_assigner.assign, self.num_classes)
        refine_targets = self._refine_targets(init_boxes.detach(), samples)
        losses = {}
        valid = refine_targets.valid
        losses["loss_cls"] = self.loss_cls(logits[valid], refine_targets.labels[valid],
                                           avg_factor=refine_targets.num_pos)
        for name, targets, boxes, loss_fn in (
                ("loss_pts_init", init_targets, init_boxes, self.loss_pts_init),
                ("loss_pts_refine", refine_targets, refine_boxes, self.loss_pts_refine)):
            pos = targets.positive
            norm = scale[pos]
            losses[name] = loss_fn(boxes[pos] / norm, targets.pos_gt_boxes / norm,
                                   avg_factor=targets.num_pos)
        return losses

    def _refine_targets(self, init_boxes: Tensor, samples: Sequence[DetSample]) -> DenseTargets:
        """Targets of the refine stage: each image's own init boxes assigned by IoU."""
        per_image = [dense_targets(boxes, [sample], self.refine_assigner.assign, self.num_classes)
                     for boxes, sample in zip(init_boxes, samples)]
        return DenseTargets(torch.cat([t.labels for t in per_image]),
                            torch.cat([t.valid for t in per_image]),
                            torch.cat([t.pos_gt_boxes for t in per_image]), self.num_classes)

    def predict_by_outputs(
        self, cls_logits: Sequence[Tensor], pts_init: Sequence[Tensor],
        pts_refine: Sequence[Tensor], samples: Sequence[DetSample],
    ) -> list[Instances]:
        """Refined point sets as boxes; per level threshold and top ``nms_pre``, then class-wise
        NMS (see ``select_detections``). ``pts_init`` is not used."""
        points = self.points(cls_logits)
        logits = [flatten_level(x, self.num_classes) for x in cls_logits]
        pts = [flatten_level(x, 2 * self.num_points) for x in pts_refine]
        return [
            select_detections(
                points, [x[i] for x in logits], [x[i] for x in pts], self._decode,
                sample.img_shape, self.test_settings, scores_are_logits=True,
            )
            for i, sample in enumerate(samples)
        ]

    def _decode(self, points: Tensor, pts: Tensor, img_shape: Sequence[int]) -> Tensor:
        return clip_boxes_to_image(self.boxes(points, pts), tuple(img_shape))
