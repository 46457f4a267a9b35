"""Box regression targets: centre offsets and log size ratios relative to a reference box
(R-CNN's parameterization), or distances from a point to the box sides (anchor-free heads)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor
from torchvision.ops import clip_boxes_to_image

from detbox.registry import TASK_UTILS

__all__ = ["DeltaXYWHBoxCoder", "DistancePointBoxCoder", "box_to_distances"]


@TASK_UTILS.register
class DeltaXYWHBoxCoder:
    """Encode a box relative to a reference box as ``(dx, dy, dw, dh)``, normalized.

    ``dx = (gx - px) / pw``, ``dw = log(gw / pw)`` (widths are ``x2 - x1``, no ``+1``), then
    ``(d - mean) / std``. This is torchvision's ``BoxCoder`` with ``weights = 1 / stds``, so a
    detector trained in either decodes the same way.

    Args:
        target_means: per-coordinate means subtracted from the raw deltas.
        target_stds: per-coordinate stds the raw deltas are divided by (e.g. (0.1, 0.1, 0.2, 0.2)
            for Faster R-CNN's box head, whose regressions are small).
        wh_clip: largest decoded ``dw, dh`` before ``exp``, so a wild prediction cannot overflow.
    """

    def __init__(
        self,
        *,
        target_means: Sequence[float] = (0.0, 0.0, 0.0, 0.0),
        target_stds: Sequence[float] = (1.0, 1.0, 1.0, 1.0),
        wh_clip: float = math.log(1000.0 / 16),
    ) -> None:
        self.target_means = tuple(float(m) for m in target_means)
        self.target_stds = tuple(float(s) for s in target_stds)
        self.wh_clip = float(wh_clip)

    def encode(self, boxes: Tensor, gt: Tensor) -> Tensor:
        """Deltas that turn ``boxes`` into ``gt``: (N, 4), (N, 4) xyxy -> (N, 4)."""
        gt = gt.to(boxes.dtype)
        widths = (boxes[:, 2] - boxes[:, 0]).clamp(min=1e-6)
        heights = (boxes[:, 3] - boxes[:, 1]).clamp(min=1e-6)
        ctr_x = boxes[:, 0] + 0.5 * widths
        ctr_y = boxes[:, 1] + 0.5 * heights
        gt_widths = (gt[:, 2] - gt[:, 0]).clamp(min=1e-6)
        gt_heights = (gt[:, 3] - gt[:, 1]).clamp(min=1e-6)
        gt_ctr_x = gt[:, 0] + 0.5 * gt_widths
        gt_ctr_y = gt[:, 1] + 0.5 * gt_heights
        deltas = torch.stack([
            (gt_ctr_x - ctr_x) / widths,
            (gt_ctr_y - ctr_y) / heights,
            torch.log(gt_widths / widths),
            torch.log(gt_heights / heights),
        ], dim=1)
        means = deltas.new_tensor(self.target_means)
        stds = deltas.new_tensor(self.target_stds)
        return (deltas - means) / stds

    def decode(
        self, boxes: Tensor, deltas: Tensor, max_shape: Sequence[int] | None = None
    ) -> Tensor:
        """Apply deltas to boxes.

        Args:
            boxes: (N, 4) xyxy reference boxes.
            deltas: (N, 4 * K) deltas, K boxes per reference (e.g. one per class).
            max_shape: ``(h, w)`` to clip the decoded boxes to, or None.

        Returns:
            (N, 4 * K) decoded xyxy boxes, in the dtype of ``deltas``.
        """
        num = boxes.shape[0]
        deltas_4 = deltas.reshape(num, deltas.shape[-1] // 4, 4)
        boxes = boxes.to(deltas.dtype)
        widths = (boxes[:, 2] - boxes[:, 0])[:, None]
        heights = (boxes[:, 3] - boxes[:, 1])[:, None]
        ctr_x = boxes[:, 0, None] + 0.5 * widths
        ctr_y = boxes[:, 1, None] + 0.5 * heights
        means = deltas.new_tensor(self.target_means)
        stds = deltas.new_tensor(self.target_stds)
        denorm = deltas_4 * stds + means
        dw = denorm[..., 2].clamp(max=self.wh_clip)
        dh = denorm[..., 3].clamp(max=self.wh_clip)
        pred_ctr_x = denorm[..., 0] * widths + ctr_x
        pred_ctr_y = denorm[..., 1] * heights + ctr_y
        half_w = 0.5 * (torch.exp(dw) * widths)
        half_h = 0.5 * (torch.exp(dh) * heights)
        decoded = torch.stack(
            [pred_ctr_x - half_w, pred_ctr_y - half_h, pred_ctr_x + half_w, pred_ctr_y + half_h],
            dim=-1,
        ).reshape(deltas.shape)
        if max_shape is not None:
            decoded = clip_boxes_to_image(decoded, (int(max_shape[0]), int(max_shape[1])))
        return decoded


def box_to_distances(points: Tensor, boxes: Tensor) -> Tensor:
    """(N, 2) ``(x, y)`` points, (N, 4) xyxy boxes -> (N, 4) ``(left, top, right, bottom)``
    distances from each point to its box's sides (negative on a side the point lies beyond)."""
    x, y = points[:, 0], points[:, 1]
    return torch.stack([x - boxes[:, 0], y - boxes[:, 1], boxes[:, 2] - x, boxes[:, 3] - y], dim=-1)


@TASK_UTILS.register
class DistancePointBoxCoder:
    """Encode a box seen from a point as its distances ``(left, top, right, bottom)`` to the
    box sides (FCOS, GFL); positive when the point lies inside the box.

    Args:
        clip_border: clip decoded boxes to ``max_shape`` when one is given.
    """

    def __init__(self, *, clip_border: bool = True) -> None:
        self.clip_border = clip_border

    def encode(self, points: Tensor, gt: Tensor) -> Tensor:
        """(N, 2) ``(x, y)`` points and (N, 4) xyxy boxes -> (N, 4) distances."""
        return box_to_distances(points, gt)

    def decode(
        self, points: Tensor, distances: Tensor, max_shape: Sequence[int] | None = None
    ) -> Tensor:
        """(N, 2) points and (N, 4) distances -> (N, 4) xyxy boxes in the dtype of
        ``distances``, clipped to ``max_shape = (h, w)`` when given."""
        points = points.to(distances.dtype)
        x, y = points[:, 0], points[:, 1]
        boxes = torch.stack([x - distances[:, 0], y - distances[:, 1],
                             x + distances[:, 2], y + distances[:, 3]], dim=-1)
        if max_shape is not None and self.clip_border:
            boxes = clip_boxes_to_image(boxes, (int(max_shape[0]), int(max_shape[1])))
        return boxes
