"""Assign grid points to the objects whose centres they are closest to (RepPoints' first stage)."""

from __future__ import annotations

from typing import Annotated

import torch
from torch import Tensor

from detbox.models.task_modules.assigners import BACKGROUND, AssignResult
from detbox.registry import TASK_UTILS
from detbox.typecheck import Positive

__all__ = ["PointAssigner"]


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
