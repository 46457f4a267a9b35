"""The Guided Anchoring branch (Wang et al., 2019, "Region Proposal by Guided Anchoring").

Instead of tiling fixed anchors, a head predicts *where* anchors should be (a location
probability per cell) and *what shape* they should have (``(dw, dh)`` relative to a square of
``scale * stride``); its features are then adapted to that shape by a deformable conv whose
offsets come from the predicted shape. :class:`AnchorGuide` holds the location and shape
convolutions, their targets and losses, and turns predictions into guided anchors; the heads
(``GARetinaHead``, ``GARPNHead``) compose it with :class:`FeatureAdaption`.

- location targets: an object of size ``s`` belongs to the level ``round(log2(s / (scale *
  stride_0)))``; on that level the cells of its central ``center_ratio`` region are positive,
  the rest of its ``ignore_ratio`` region is ignored, and so is that region on the two
  neighbouring levels; other cells are negatives with weight 0.1. Focal loss, normalized by the
  number of cells / 200.
- shape targets: each location is assigned by the best IoU of its approximating anchors
  (``ApproxMaxIoUAssigner``), sampled, and the bounded IoU loss compares the positives'
  predicted anchors with their GT boxes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torchvision.ops import DeformConv2d

from detbox.models.dense_heads.dense_utils import flatten_levels
from detbox.registry import MODELS, TASK_UTILS
from detbox.structures import DetSample

__all__ = ["AnchorGuide", "FeatureAdaption", "location_targets"]


class FeatureAdaption(nn.Module):
    """ReLU(deformable conv) whose offsets are a 1x1 conv of the (detached) predicted shape.

    Args:
        in_channels, out_channels: channels of the adapted features.
        kernel_size: the deformable kernel.
        deform_groups: offset groups (channel groups with their own offsets).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3,
                 deform_groups: int = 4) -> None:
        super().__init__()
        self.conv_offset = nn.Conv2d(2, deform_groups * 2 * kernel_size**2, 1, bias=False)
        self.conv_adaption = DeformConv2d(in_channels, out_channels, kernel_size,
                                          padding=(kernel_size - 1) // 2)
        nn.init.normal_(self.conv_offset.weight, std=0.1)
        nn.init.normal_(self.conv_adaption.weight, std=0.01)
        nn.init.zeros_(self.conv_adaption.bias)

    def forward(self, x: Tensor, shape: Tensor) -> Tensor:
        """(B, C, H, W) features and (B, 2, H, W) shape predictions -> adapted features."""
        return torch.relu(self.conv_adaption(x, self.conv_offset(shape.detach())))


def _region(box: Tensor, ratio: float, size: Sequence[int]) -> tuple[int, int, int, int]:
    """Cells ``x1, y1, x2, y2`` (inclusive) of the central part of ``box`` (in cells) that
    leaves ``ratio`` of its width / height on each side, clamped to the map."""
    x1 = int(torch.round((1 - ratio) * box[0] + ratio * box[2]).clamp(0, size[1]))
    y1 = int(torch.round((1 - ratio) * box[1] + ratio * box[3]).clamp(0, size[0]))
    x2 = int(torch.round(ratio * box[0] + (1 - ratio) * box[2]).clamp(0, size[1]))
    y2 = int(torch.round(ratio * box[1] + (1 - ratio) * box[3]).clamp(0, size[0]))
    return x1, y1, x2, y2


def location_targets(
    gt_per_image: Sequence[Tensor], sizes: Sequence[Sequence[int]], strides: Sequence[int],
    base_scale: float, center_ratio: float = 0.2, ignore_ratio: float = 0.5,
) -> tuple[list[Tensor], list[Tensor]]:
    """Per level (B, H_l, W_l) float targets (1: an object's centre region) and loss weights
    (1 positives, 0 ignored, 0.1 negatives); see the module docstring."""
    num_levels, batch = len(sizes), len(gt_per_image)
    targets = [torch.zeros(batch, *size) for size in sizes]
    weights = [torch.full((batch, *size), -1.0) for size in sizes]
    nearby = [torch.zeros(batch, *size, dtype=torch.bool) for size in sizes]
    r_ctr, r_ign = (1 - center_ratio) / 2, (1 - ignore_ratio) / 2
    for i, gt in enumerate(gt_per_image):
        gt = gt.detach().float().cpu()
        scale = ((gt[:, 2] - gt[:, 0]) * (gt[:, 3] - gt[:, 1])).clamp(min=1e-6).sqrt()
        lvls = torch.floor(torch.log2(scale) - math.log2(base_scale * strides[0]) + 0.5)
        for box, lvl in zip(gt, lvls.clamp(0, num_levels - 1).long().tolist()):
            ix1, iy1, ix2, iy2 = _region(box / strides[lvl], r_ign, sizes[lvl])
            cx1, cy1, cx2, cy2 = _region(box / strides[lvl], r_ctr, sizes[lvl])
            targets[lvl][i, cy1:cy2 + 1, cx1:cx2 + 1] = 1
            weights[lvl][i, iy1:iy2 + 1, ix1:ix2 + 1] = 0
            weights[lvl][i, cy1:cy2 + 1, cx1:cx2 + 1] = 1
            for other in (lvl - 1, lvl + 1):
                if 0 <= other < num_levels:
                    x1, y1, x2, y2 = _region(box / strides[other], r_ign, sizes[other])
                    nearby[other][i, y1:y2 + 1, x1:x2 + 1] = True
    for weight, near in zip(weights, nearby):
        weight[(weight < 0) & near] = 0
        weight[weight < 0] = 0.1
    return targets, weights


class AnchorGuide(nn.Module):
    """Location and shape prediction of guided anchors, with their targets and losses.

    Args:
        in_channels: channels of the features the two 1x1 convs read.
        approx_anchor_generator: ``TASK_UTILS`` config: the anchors that approximate all shapes
            at a location (for the shape targets).
        square_anchor_generator: ``TASK_UTILS`` config with one square anchor per location,
            the base the predicted shape scales.
        anchor_coder: ``TASK_UTILS`` box coder of the shape ``(0, 0, dw, dh)``.
        assigner, sampler: ``TASK_UTILS`` configs of the shape targets (``ApproxMaxIoUAssigner``,
            ``RandomSampler``).
        loss_loc, loss_shape: ``MODELS`` configs (focal loss, bounded IoU loss).
        center_ratio, ignore_ratio: the positive and ignored parts of an object for the
            location targets.
        loc_filter_thr: locations scoring below it get no anchor.
        prior_prob: initial location probability.
    """

    def __init__(
        self, *, in_channels: int, approx_anchor_generator: Mapping[str, Any] | Any,
        square_anchor_generator: Mapping[str, Any] | Any, anchor_coder: Mapping[str, Any] | Any,
        assigner: Mapping[str, Any] | Any, sampler: Mapping[str, Any] | Any,
        loss_loc: Mapping[str, Any] | nn.Module, loss_shape: Mapping[str, Any] | nn.Module,
        center_ratio: float, ignore_ratio: float, loc_filter_thr: float, prior_prob: float,
    ) -> None:
        super().__init__()
        self.approx_generator = TASK_UTILS.build(approx_anchor_generator)
        self.square_generator = TASK_UTILS.build(square_anchor_generator)
        if self.square_generator.num_anchors != 1:
            raise ValueError("square_anchor_generator must make one anchor per location")
        self.anchor_coder = TASK_UTILS.build(anchor_coder)
        self.assigner = TASK_UTILS.build(assigner)
        self.sampler = TASK_UTILS.build(sampler)
        self.loss_loc = MODELS.build(loss_loc)
        self.loss_shape = MODELS.build(loss_shape)
        self.center_ratio, self.ignore_ratio = center_ratio, ignore_ratio
        self.loc_filter_thr = loc_filter_thr
        self.conv_loc = nn.Conv2d(in_channels, 1, 1)
        self.conv_shape = nn.Conv2d(in_channels, 2, 1)
        for conv in (self.conv_loc, self.conv_shape):
            nn.init.normal_(conv.weight, std=0.01)
            nn.init.zeros_(conv.bias)
        nn.init.constant_(self.conv_loc.bias, -math.log((1 - prior_prob) / prior_prob))

    def forward(self, loc_feat: Tensor, shape_feat: Tensor) -> tuple[Tensor, Tensor]:
        """(B, 1, H, W) location logits and (B, 2, H, W) shapes ``(dw, dh)`` of one level."""
        return self.conv_loc(loc_feat), self.conv_shape(shape_feat)

    def squares(self, maps: Sequence[Tensor]) -> list[Tensor]:
        """Per level (H_l * W_l, 4) square anchors for maps of these sizes."""
        sizes = [x.shape[-2:] for x in maps]
        return self.square_generator.grid_anchors(sizes, device=maps[0].device)

    def guided_anchors(self, squares: Tensor, shapes: Tensor) -> Tensor:
        """(N, 4) squares and (..., N, 2) shapes -> (..., N, 4) anchors, centres kept."""
        deltas = torch.cat([torch.zeros_like(shapes), shapes], dim=-1).float()
        flat = self.anchor_coder.decode(squares.expand(*deltas.shape[:-1], 4).reshape(-1, 4),
                                        deltas.reshape(-1, 4))
        return flat.reshape(deltas.shape)

    def anchors_and_masks(
        self, loc_logits: Sequence[Tensor], shapes: Sequence[Tensor]
    ) -> tuple[list[Tensor], list[Tensor]]:
        """Per level the detached guided anchors (B, N_l, 4) and location masks (B, N_l)."""
        anchors, masks = [], []
        for squares, loc, shape in zip(self.squares(loc_logits), loc_logits, shapes):
            shape = flatten_levels([shape.detach()], 2)
            anchors.append(self.guided_anchors(squares, shape))
            masks.append(flatten_levels([loc.detach()], 1)[..., 0].sigmoid()
                         >= self.loc_filter_thr)
        return anchors, masks

    def loss(
        self, loc_logits: Sequence[Tensor], shapes: Sequence[Tensor],
        samples: Sequence[DetSample],
    ) -> tuple[Tensor, Tensor]:
        """``(loss_loc, loss_shape)`` of a batch (see the module docstring)."""
        device = loc_logits[0].device
        gts = [s.gt_or_empty(device).boxes for s in samples]
        targets, weights = location_targets(
            gts, [x.shape[-2:] for x in loc_logits], self.square_generator.strides,
            self.square_generator.sizes[0][0] / self.square_generator.strides[0],
            self.center_ratio, self.ignore_ratio)
        logits = torch.cat([x.reshape(-1, 1) for x in loc_logits])
        target = torch.cat([t.reshape(-1, 1) for t in targets]).to(device)
        weight = torch.cat([w.reshape(-1) for w in weights]).to(device)
        loss_loc = self.loss_loc(logits, target, weight=weight,
                                 avg_factor=max(target.numel() / 200, 1.0))
        return loss_loc, self._shape_loss(shapes, samples)

    def _shape_loss(self, shapes: Sequence[Tensor], samples: Sequence[DetSample]) -> Tensor:
        squares = torch.cat(self.squares(shapes))
        sizes = [x.shape[-2:] for x in shapes]
        approxes = torch.cat(self.approx_generator.grid_anchors(sizes, device=squares.device))
        approxes = approxes.reshape(squares.shape[0], -1, 4)
        flat_shapes = flatten_levels(shapes, 2).float()  # (B, N, 2)
        preds, gts, num_sampled = [], [], 0
        for i, sample in enumerate(samples):
            gt_boxes = sample.gt_or_empty(squares.device).boxes.to(squares.dtype)
            assign = self.assigner.assign_approx(squares, approxes, gt_boxes,
                                                 sample.ignored_boxes)
            pos, neg = self.sampler.sample(assign)
            num_sampled += pos.numel() + neg.numel()
            preds.append(self.guided_anchors(squares[pos], flat_shapes[i, pos]))
            gts.append(gt_boxes[assign.matched_gt[pos]])
        pred, gt = torch.cat(preds), torch.cat(gts)
        if pred.shape[0] == 0:
            return flat_shapes.sum() * 0.0
        return self.loss_shape(pred, gt, avg_factor=max(num_sampled, 1))
