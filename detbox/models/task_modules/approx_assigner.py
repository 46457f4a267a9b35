"""Assign locations by the best IoU of any of their approximating anchors (Guided Anchoring)."""

from __future__ import annotations

from torch import Tensor
from torchvision.ops import box_iou

from detbox.models.task_modules.assigners import AssignResult, MaxIoUAssigner
from detbox.registry import TASK_UTILS

__all__ = ["ApproxMaxIoUAssigner"]


@TASK_UTILS.register
class ApproxMaxIoUAssigner(MaxIoUAssigner):
    """``MaxIoUAssigner`` for locations whose anchor shape is not known yet.

    Each location is represented by A approximating anchors (the RetinaNet set of scales and
    ratios); its IoU with a GT is the best of theirs, so a location is positive when *some*
    anchor shape there would overlap the GT well. Same arguments as ``MaxIoUAssigner``.
    """

    def assign_approx(
        self, squares: Tensor, approxes: Tensor, gt_boxes: Tensor,
        ignored_boxes: Tensor | None = None,
    ) -> AssignResult:
        """Assign N locations to G GT boxes.

        Args:
            squares: (N, 4) one box per location (the base square anchor), used for the
                ignored-region test.
            approxes: (N, A, 4) the approximating anchors of each location.
            gt_boxes: (G, 4) xyxy, G may be 0.
            ignored_boxes: (M, 4) ignored regions or None.

        Returns:
            AssignResult over the N locations; ``max_iou`` is the best approximating IoU.
        """
        num, per_location = approxes.shape[:2]
        ignored = self._ignored_mask(squares, ignored_boxes)
        if gt_boxes.shape[0] == 0 or num == 0:
            iou = squares.new_zeros((gt_boxes.shape[0], num))
        else:
            iou = box_iou(gt_boxes.to(approxes.dtype), approxes.reshape(-1, 4))
            iou = iou.reshape(-1, num, per_location).max(dim=2).values
        return self.assign_by_iou(iou, ignored)
