"""Centre-ness (FCOS): how close a location is to the centre of the box it regresses.

Its prediction multiplies the class score at inference, pushing down boxes regressed from
locations far off an object's centre; its target also weights the box loss of FCOS and ATSS.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["centerness_losses", "centerness_targets"]


def centerness_targets(distances: Tensor) -> Tensor:
    """(N, 4) ``(left, top, right, bottom)`` distances to the GT box sides, positive inside it
    -> (N,) ``sqrt(min(l, r) / max(l, r) * min(t, b) / max(t, b))`` in [0, 1]; 1 at the centre."""
    left_right, top_bottom = distances[:, 0::2], distances[:, 1::2]
    ratio = ((left_right.min(dim=-1).values / left_right.max(dim=-1).values.clamp(min=1e-6))
             * (top_bottom.min(dim=-1).values / top_bottom.max(dim=-1).values.clamp(min=1e-6)))
    return torch.sqrt(ratio.clamp(min=0))


def centerness_losses(
    loss_bbox: nn.Module, loss_centerness: nn.Module, pred_boxes: Tensor, gt_boxes: Tensor,
    centerness_logits: Tensor, targets: Tensor, num_pos: Tensor,
) -> tuple[Tensor, Tensor]:
    """The positives' box loss, weighted by their centre-ness targets (normalised by the
    targets' sum), and the centre-ness loss (normalised by the number of positives).

    Args:
        loss_bbox: box loss on decoded (P, 4) xyxy boxes (IoU, GIoU).
        loss_centerness: binary loss on logits (sigmoid cross-entropy).
        pred_boxes, gt_boxes: (P, 4) the positives' predicted and GT boxes.
        centerness_logits: (P,) predicted centre-ness logits; targets: (P,) their targets.
        num_pos: the batch's positives (at least 1).

    Returns:
        ``(loss_bbox, loss_centerness)``; exact zeros in the graph when P = 0.
    """
    weight_sum = targets.sum().clamp(min=1e-6)
    box = loss_bbox(pred_boxes, gt_boxes, weight=targets, avg_factor=weight_sum)
    centerness = loss_centerness(centerness_logits, targets, avg_factor=num_pos)
    return box, centerness
