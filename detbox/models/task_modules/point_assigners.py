"""Assigners of anchor-free heads: points inside a GT box (FCOS) or its central "fovea"
(FoveaBox), on the level whose size range suits the box; or the points nearest a GT's centre
(RepPoints' first stage)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

import torch
from torch import Tensor

from detbox.errors import ConfigError
from detbox.models.task_modules.assigners import BACKGROUND, IGNORED, AssignResult
from detbox.registry import TASK_UTILS
from detbox.typecheck import Positive

__all__ = ["FCOSAssigner", "FoveaAssigner", "PointAssigner", "points_in_boxes"]

#: An upper bound no box distance reaches; stands for "no limit" in regression ranges.
INF = 1e8


def _smallest_match(candidate: Tensor, gt_boxes: Tensor) -> Tensor:
    """(N, G) bool candidates -> (N,) index of the smallest-area candidate GT, or BACKGROUND."""
    areas = (gt_boxes[:, 2] - gt_boxes[:, 0]) * (gt_boxes[:, 3] - gt_boxes[:, 1])
    areas = areas[None, :].expand_as(candidate).masked_fill(~candidate, INF * INF)
    min_area, best = areas.min(dim=1)
    return torch.where(min_area < INF * INF, best, torch.full_like(best, BACKGROUND))


def _mark_ignored(matched: Tensor, points: Tensor, ignored_boxes: Tensor | None) -> None:
    """Negatives inside an ignored region (crowd) get no loss, in place on ``matched``."""
    if ignored_boxes is not None and ignored_boxes.numel():
        inside = points_in_boxes(points, ignored_boxes.to(points)).any(dim=1)
        matched[inside & (matched == BACKGROUND)] = IGNORED


def points_in_boxes(points: Tensor, boxes: Tensor) -> Tensor:
    """(N, 2) points, (G, 4) xyxy boxes -> (N, G) bool, True where the point is strictly inside."""
    x, y = points[:, 0, None], points[:, 1, None]
    return ((x > boxes[None, :, 0]) & (y > boxes[None, :, 1])
            & (x < boxes[None, :, 2]) & (y < boxes[None, :, 3]))


@TASK_UTILS.register
class FCOSAssigner:
    """FCOS's rule (Tian et al., 2019): a point is positive for a GT box when it lies inside the
    box (or, with centre sampling, inside the box's centre region) and its largest distance to
    the box sides falls in its level's regression range; among several such GTs it takes the
    smallest. Levels therefore split objects by size, as anchors of different sizes do.

    Args:
        regress_ranges: ``(lo, hi)`` of the largest point-to-side distance per level, in pixels,
            bounds included; ``INF`` (1e8) means no upper limit.
        center_sampling: only points within ``center_sample_radius`` strides of the box centre
            (and inside the box) may be positive (the paper's later improvement).
        center_sample_radius: the centre region's half size, in strides of the point's level.
        ignore_ignored: negatives inside an ignored region (crowd) get no loss.
    """

    def __init__(
        self,
        *,
        regress_ranges: Sequence[Sequence[float]] = (
            (-1, 64), (64, 128), (128, 256), (256, 512), (512, INF)),
        center_sampling: bool = False,
        center_sample_radius: float = 1.5,
        ignore_ignored: bool = True,
    ) -> None:
        if any(len(r) != 2 for r in regress_ranges):
            raise ConfigError(f"regress_ranges must be (lo, hi) pairs, got {regress_ranges}")
        self.regress_ranges = [(float(lo), float(hi)) for lo, hi in regress_ranges]
        self.center_sampling = center_sampling
        self.center_sample_radius = float(center_sample_radius)
        self.ignore_ignored = ignore_ignored

    def assign(
        self, points: Tensor, gt_boxes: Tensor, ignored_boxes: Tensor | None = None, *,
        num_level_points: Sequence[int], strides: Sequence[int],
    ) -> AssignResult:
        """Assign N points of all levels to G GT boxes.

        Args:
            points: (N, 2) ``(x, y)``, levels concatenated.
            gt_boxes: (G, 4) xyxy, G may be 0.
            ignored_boxes: (M, 4) xyxy regions, or None.
            num_level_points: points of each level (sums to N).
            strides: stride of each level (the centre region's unit).

        Returns:
            AssignResult; ``max_iou`` is zero (FCOS does not look at overlaps).
        """
        if len(num_level_points) != len(self.regress_ranges):
            raise ValueError(f"FCOSAssigner has {len(self.regress_ranges)} regression ranges, "
                             f"got {len(num_level_points)} levels")
        num = points.shape[0]
        matched = torch.full((num,), BACKGROUND, dtype=torch.int64, device=points.device)
        if gt_boxes.shape[0] > 0 and num > 0:
            matched = self._match(points, gt_boxes, num_level_points, strides)
        if self.ignore_ignored:
            _mark_ignored(matched, points, ignored_boxes)
        return AssignResult(matched, points.new_zeros((num,)))

    def _match(self, points: Tensor, gt_boxes: Tensor, num_level_points: Sequence[int],
               strides: Sequence[int]) -> Tensor:
        ranges = torch.cat([points.new_tensor(r).expand(n, 2)
                            for r, n in zip(self.regress_ranges, num_level_points)])
        x, y = points[:, 0, None], points[:, 1, None]
        dist = torch.stack([x - gt_boxes[:, 0], y - gt_boxes[:, 1],
                            gt_boxes[:, 2] - x, gt_boxes[:, 3] - y], dim=-1)  # (N, G, 4)
        if self.center_sampling:
            inside = self._in_center_region(points, gt_boxes, num_level_points, strides)
        else:
            inside = dist.min(dim=-1).values > 0
        max_dist = dist.max(dim=-1).values
        in_range = (max_dist >= ranges[:, 0, None]) & (max_dist <= ranges[:, 1, None])
        return _smallest_match(inside & in_range, gt_boxes)

    def _in_center_region(self, points: Tensor, gt_boxes: Tensor,
                          num_level_points: Sequence[int], strides: Sequence[int]) -> Tensor:
        """(N, G): inside the GT box shrunk to ``radius * stride`` around its centre."""
        radius = torch.cat([points.new_full((n,), s * self.center_sample_radius)
                            for s, n in zip(strides, num_level_points)])[:, None]
        cx = (gt_boxes[:, 0] + gt_boxes[:, 2]) / 2
        cy = (gt_boxes[:, 1] + gt_boxes[:, 3]) / 2
        x1 = torch.maximum(cx - radius, gt_boxes[:, 0])
        y1 = torch.maximum(cy - radius, gt_boxes[:, 1])
        x2 = torch.minimum(cx + radius, gt_boxes[:, 2])
        y2 = torch.minimum(cy + radius, gt_boxes[:, 3])
        x, y = points[:, 0, None], points[:, 1, None]
        return (x > x1) & (y > y1) & (x < x2) & (y < y2)


@TASK_UTILS.register
class FoveaAssigner:
    """FoveaBox's rule (Kong et al., 2020): a GT box belongs to every level whose scale range
    holds ``sqrt(area)`` (ranges overlap, so a box may train two levels), and on those levels
    the points of its "fovea", the box shrunk by ``sigma`` around its centre, are positive; among
    several such GTs a point takes the smallest.

    Args:
        scale_ranges: ``(lo, hi)`` of ``sqrt(area)`` per level, in pixels, bounds included.
        sigma: the fovea's size relative to the box (0.4: the central 40 % of each side).
        ignore_ignored: negatives inside an ignored region (crowd) get no loss.
    """

    def __init__(
        self,
        *,
        scale_ranges: Sequence[Sequence[float]] = (
            (1, 64), (32, 128), (64, 256), (128, 512), (256, 2048)),
        sigma: float = 0.4,
        ignore_ignored: bool = True,
    ) -> None:
        if any(len(r) != 2 for r in scale_ranges):
            raise ConfigError(f"scale_ranges must be (lo, hi) pairs, got {scale_ranges}")
        self.scale_ranges = [(float(lo), float(hi)) for lo, hi in scale_ranges]
        self.sigma = float(sigma)
        self.ignore_ignored = ignore_ignored

    def assign(
        self, points: Tensor, gt_boxes: Tensor, ignored_boxes: Tensor | None = None, *,
        num_level_points: Sequence[int],
    ) -> AssignResult:
        """Assign N points of all levels (``num_level_points`` each) to G GT boxes.

        Returns:
            AssignResult; ``max_iou`` is zero (FoveaBox does not look at overlaps).
        """
        if len(num_level_points) != len(self.scale_ranges):
            raise ValueError(f"FoveaAssigner has {len(self.scale_ranges)} scale ranges, "
                             f"got {len(num_level_points)} levels")
        num = points.shape[0]
        matched = torch.full((num,), BACKGROUND, dtype=torch.int64, device=points.device)
        if gt_boxes.shape[0] > 0 and num > 0:
            ranges = torch.cat([points.new_tensor(r).expand(n, 2)
                                for r, n in zip(self.scale_ranges, num_level_points)])
            scale = ((gt_boxes[:, 2] - gt_boxes[:, 0]) * (gt_boxes[:, 3] - gt_boxes[:, 1])).sqrt()
            in_range = (scale[None, :] >= ranges[:, :1]) & (scale[None, :] <= ranges[:, 1:])
            centers = (gt_boxes[:, :2] + gt_boxes[:, 2:]) / 2
            half = (gt_boxes[:, 2:] - gt_boxes[:, :2]) * (self.sigma / 2)
            fovea = torch.cat([centers - half, centers + half], dim=1)
            x, y = points[:, 0, None], points[:, 1, None]
            inside = ((x >= fovea[:, 0]) & (y >= fovea[:, 1])
                      & (x <= fovea[:, 2]) & (y <= fovea[:, 3]))
            matched = _smallest_match(inside & in_range, gt_boxes)
        if self.ignore_ignored:
            _mark_ignored(matched, points, ignored_boxes)
        return AssignResult(matched, points.new_zeros((num,)))


@TASK_UTILS.register
class PointAssigner:
    """Each GT claims its ``pos_num`` points nearest its centre on the level matching its size.

    A GT of size ``w x h`` belongs to the level of stride ``2**l`` with
    ``l = floor((log2(w / scale) + log2(h / scale)) / 2)``, clamped to the available levels.
    Distances are measured in units of the GT's width and height. A point claimed by several GTs
    goes to the nearest (the first on ties); every other point is background. Ignored regions
    are not used (no point is ignored).

    Args:
        scale: the object size, in strides, that a level's points are responsible for.
        pos_num: points each GT claims.
    """

    def __init__(self, *, scale: Annotated[float, Positive] = 4.0,
                 pos_num: Annotated[int, Positive] = 1) -> None:
        self.scale = float(scale)
        self.pos_num = pos_num

    def assign(
        self, points: Tensor, gt_boxes: Tensor, ignored_boxes: Tensor | None = None
    ) -> AssignResult:
        """Assign N points to G GT boxes.

        Args:
            points: (N, 3) ``(x, y, stride)`` of each point (strides are powers of 2).
            gt_boxes: (G, 4) xyxy, G may be 0.
            ignored_boxes: unused.

        Returns:
            AssignResult; ``max_iou`` holds zeros (points have no IoU).
        """
        num = points.shape[0]
        matched = torch.full((num,), BACKGROUND, dtype=torch.int64, device=points.device)
        if gt_boxes.shape[0] == 0 or num == 0:
            return AssignResult(matched, points.new_zeros((num,)))
        point_lvl = torch.log2(points[:, 2]).round()
        centres = (gt_boxes[:, :2] + gt_boxes[:, 2:]) / 2
        sizes = (gt_boxes[:, 2:] - gt_boxes[:, :2]).clamp(min=1e-6)
        gt_lvl = ((torch.log2(sizes[:, 0] / self.scale) + torch.log2(sizes[:, 1] / self.scale))
                  / 2).floor().clamp(point_lvl.min(), point_lvl.max())
        dist = ((points[None, :, :2] - centres[:, None]) / sizes[:, None]).norm(dim=-1)  # (G, N)
        dist = dist.masked_fill(gt_lvl[:, None] != point_lvl[None, :], float("inf"))
        k = min(self.pos_num, num)
        near_dist, near = dist.topk(k, dim=1, largest=False)
        chosen = torch.full_like(dist, float("inf"))
        chosen.scatter_(1, near, near_dist)
        best_dist, best_gt = chosen.min(dim=0)
        claimed = torch.isfinite(best_dist)
        matched[claimed] = best_gt[claimed]
        return AssignResult(matched, points.new_zeros((num,)))
