"""Label boxes (anchors, proposals) as matched to a ground-truth box, background, or ignored."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor
from torchvision.ops import box_iou

from detbox.errors import ConfigError
from detbox.registry import TASK_UTILS

__all__ = ["BACKGROUND", "IGNORED", "AssignResult", "MaxIoUAssigner", "box_iof"]

BACKGROUND = -1
IGNORED = -2


@dataclass
class AssignResult:
    """The outcome of matching N boxes to G ground-truth boxes.

    Attributes:
        matched_gt: (N,) int64; ``>= 0`` the matched GT index, ``-1`` background, ``-2`` ignored
            (IoU between the thresholds, or mostly inside an ignored region): no loss at all.
        max_iou: (N,) float, each box's highest IoU with any GT (0 when there is none).
    """

    matched_gt: Tensor
    max_iou: Tensor

    @property
    def pos_mask(self) -> Tensor:
        return self.matched_gt >= 0

    @property
    def neg_mask(self) -> Tensor:
        return self.matched_gt == BACKGROUND

    @property
    def num_pos(self) -> int:
        return int(self.pos_mask.sum())


def box_iof(boxes: Tensor, regions: Tensor) -> Tensor:
    """Fraction of each box's area inside each region: (N, 4), (M, 4) xyxy -> (N, M)."""
    top_left = torch.maximum(boxes[:, None, :2], regions[None, :, :2])
    bottom_right = torch.minimum(boxes[:, None, 2:], regions[None, :, 2:])
    inter = (bottom_right - top_left).clamp(min=0).prod(dim=-1)
    area = ((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])).clamp(min=1e-6)
    return inter / area[:, None]


@TASK_UTILS.register
class MaxIoUAssigner:
    """Match each box to the GT it overlaps most, by IoU thresholds.

    A box is positive when its best IoU >= ``pos_iou_thr``, background when it lies in the negative
    range, ignored otherwise. With ``allow_low_quality_matches`` every GT additionally claims the
    box(es) it overlaps most (ties included) if that IoU is > 0 and >= ``min_pos_iou``, so that no
    GT is left without a positive; a box claimed by several GTs goes to the one it overlaps most.

    Args:
        pos_iou_thr: IoU at or above which a box is positive.
        neg_iou_thr: IoU below which a box is background; a ``(lo, hi)`` pair makes background
            ``lo <= IoU < hi`` (boxes below ``lo`` are then ignored).
        min_pos_iou: lowest IoU a low-quality match may have.
        allow_low_quality_matches: let each GT claim its best box(es) regardless of
            ``pos_iou_thr`` (RetinaNet, RPN; off for the second stage of Faster R-CNN).
        ignore_iof_thr: boxes whose area lies more than this fraction inside an ignored region
            are ignored; ``<= 0`` disables it.
    """

    def __init__(
        self,
        *,
        pos_iou_thr: float,
        neg_iou_thr: float | Sequence[float],
        min_pos_iou: float = 0.0,
        allow_low_quality_matches: bool = True,
        ignore_iof_thr: float = 0.5,
    ) -> None:
        if isinstance(neg_iou_thr, (int, float)):
            neg_range = (0.0, float(neg_iou_thr))
        elif len(neg_iou_thr) == 2:
            neg_range = (float(neg_iou_thr[0]), float(neg_iou_thr[1]))
        else:
            raise ConfigError(f"neg_iou_thr must be a float or a (lo, hi) pair, got {neg_iou_thr}")
        self.pos_iou_thr = float(pos_iou_thr)
        self.neg_range = neg_range
        self.min_pos_iou = float(min_pos_iou)
        self.allow_low_quality_matches = allow_low_quality_matches
        self.ignore_iof_thr = float(ignore_iof_thr)

    def assign(
        self, boxes: Tensor, gt_boxes: Tensor, ignored_boxes: Tensor | None = None
    ) -> AssignResult:
        """Assign N boxes to G GT boxes.

        Args:
            boxes: (N, 4) xyxy anchors or proposals.
            gt_boxes: (G, 4) xyxy ground truth, G may be 0.
            ignored_boxes: (M, 4) xyxy regions whose boxes get no loss (crowds), or None.

        Returns:
            AssignResult with ``matched_gt`` (N,) and ``max_iou`` (N,).
        """
        ignored = self._ignored_mask(boxes, ignored_boxes)
        if gt_boxes.shape[0] == 0 or boxes.shape[0] == 0:
            iou = boxes.new_zeros((gt_boxes.shape[0], boxes.shape[0]))
        else:
            iou = box_iou(gt_boxes.to(boxes.dtype), boxes)
        return self.assign_by_iou(iou, ignored)

    def assign_by_iou(self, iou: Tensor, ignored: Tensor) -> AssignResult:
        """The thresholds applied to a given (G, N) IoU matrix; ``ignored``: (N,) bool boxes
        that take part in no match (for assigners that measure overlap another way)."""
        num_boxes = iou.shape[1]
        if iou.shape[0] == 0 or num_boxes == 0:
            matched = torch.full((num_boxes,), BACKGROUND, dtype=torch.int64, device=iou.device)
            matched[ignored] = IGNORED
            return AssignResult(matched, iou.new_zeros((num_boxes,)))
        max_iou, best_gt = iou.max(dim=0)
        # Ignored boxes take part in no match, not even as a GT's best box.
        iou = iou.masked_fill(ignored[None, :], -1.0)
        best_iou = max_iou.masked_fill(ignored, -1.0)
        matched = torch.full_like(best_gt, IGNORED)
        lo, hi = self.neg_range
        matched[(best_iou >= lo) & (best_iou < hi)] = BACKGROUND
        positive = best_iou >= self.pos_iou_thr
        matched[positive] = best_gt[positive]
        if self.allow_low_quality_matches:
            self._add_low_quality_matches(iou, matched)
        return AssignResult(matched, max_iou)

    def _add_low_quality_matches(self, iou: Tensor, matched: Tensor) -> None:
        """Give every GT its best box(es), in place on ``matched``; ``iou`` is (G, N)."""
        gt_best = iou.max(dim=1).values
        eligible = (gt_best > 0) & (gt_best >= self.min_pos_iou)
        is_best = (iou == gt_best[:, None]) & eligible[:, None]
        _, claimant = iou.masked_fill(~is_best, -1.0).max(dim=0)
        claimed = is_best.any(dim=0)
        matched[claimed] = claimant[claimed]

    def _ignored_mask(self, boxes: Tensor, ignored_boxes: Tensor | None) -> Tensor:
        mask = torch.zeros(boxes.shape[0], dtype=torch.bool, device=boxes.device)
        if ignored_boxes is None or ignored_boxes.numel() == 0 or self.ignore_iof_thr <= 0:
            return mask
        if boxes.shape[0] == 0:
            return mask
        iof = box_iof(boxes, ignored_boxes.to(device=boxes.device, dtype=boxes.dtype))
        return iof.max(dim=1).values > self.ignore_iof_thr
