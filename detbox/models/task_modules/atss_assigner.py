"""Adaptive Training Sample Selection (Zhang et al., 2020): an IoU threshold per GT box from the
statistics of its closest anchors, instead of one fixed threshold for all."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

import torch
from torch import Tensor
from torchvision.ops import box_iou

from detbox.models.task_modules.assigners import BACKGROUND, IGNORED, AssignResult, box_iof
from detbox.models.task_modules.point_assigners import points_in_boxes
from detbox.registry import TASK_UTILS
from detbox.typecheck import Positive

__all__ = ["ATSSAssigner"]


@TASK_UTILS.register
class ATSSAssigner:
    """For each GT box: take on every level the ``topk`` anchors whose centres are closest to
    the box centre; their IoUs with the box give the threshold ``mean + std``; candidates at or
    above it whose centre lies inside the box are positive. An anchor positive for several GTs
    goes to the one it overlaps most; all other anchors are background.

    Args:
        topk: candidates per level and GT (9 in the paper; fewer when a level has fewer anchors).
        ignore_iof_thr: non-positive anchors whose area lies more than this fraction inside an
            ignored region get no loss; ``<= 0`` disables it.
    """

    def __init__(self, *, topk: Annotated[int, Positive] = 9, ignore_iof_thr: float = 0.5) -> None:
        self.topk = topk
        self.ignore_iof_thr = float(ignore_iof_thr)

    def assign(
        self, anchors: Tensor, gt_boxes: Tensor, ignored_boxes: Tensor | None = None, *,
        num_level_anchors: Sequence[int],
    ) -> AssignResult:
        """Assign N anchors of all levels to G GT boxes.

        Args:
            anchors: (N, 4) xyxy, levels concatenated.
            gt_boxes: (G, 4) xyxy, G may be 0.
            ignored_boxes: (M, 4) xyxy regions, or None.
            num_level_anchors: anchors of each level (sums to N).

        Returns:
            AssignResult with ``matched_gt`` (N,) and ``max_iou`` (N,) (0 without GT).
        """
        num = anchors.shape[0]
        matched = torch.full((num,), BACKGROUND, dtype=torch.int64, device=anchors.device)
        max_iou = anchors.new_zeros((num,))
        if gt_boxes.shape[0] > 0 and num > 0:
            iou = box_iou(anchors, gt_boxes.to(anchors.dtype))  # (N, G)
            max_iou = iou.max(dim=1).values
            matched = self._match(anchors, gt_boxes, iou, num_level_anchors)
        if ignored_boxes is not None and ignored_boxes.numel() and self.ignore_iof_thr > 0:
            iof = box_iof(anchors, ignored_boxes.to(anchors)).max(dim=1).values
            matched[(iof > self.ignore_iof_thr) & (matched == BACKGROUND)] = IGNORED
        return AssignResult(matched, max_iou)

    def _match(self, anchors: Tensor, gt_boxes: Tensor, iou: Tensor,
               num_level_anchors: Sequence[int]) -> Tensor:
        centers = (anchors[:, :2] + anchors[:, 2:]) / 2
        gt_centers = (gt_boxes[:, :2] + gt_boxes[:, 2:]) / 2
        distances = torch.cdist(centers, gt_centers)  # (N, G)
        candidates, start = [], 0
        for count in num_level_anchors:
            k = min(self.topk, count)
            _, idx = distances[start:start + count].topk(k, dim=0, largest=False)
            candidates.append(idx + start)
            start += count
        candidates = torch.cat(candidates)  # (K, G) anchor indices
        cand_iou = iou.gather(0, candidates)
        threshold = cand_iou.mean(dim=0) + cand_iou.std(dim=0)  # (G,), unbiased std
        inside = points_in_boxes(centers, gt_boxes).gather(0, candidates)
        positive = (cand_iou >= threshold) & inside
        gt_index = torch.arange(gt_boxes.shape[0], device=anchors.device).expand_as(candidates)
        pos_iou = torch.full_like(iou, -1.0)
        pos_iou[candidates[positive], gt_index[positive]] = iou[candidates[positive],
                                                                gt_index[positive]]
        best_iou, best_gt = pos_iou.max(dim=1)
        return torch.where(best_iou >= 0, best_gt, torch.full_like(best_gt, BACKGROUND))
