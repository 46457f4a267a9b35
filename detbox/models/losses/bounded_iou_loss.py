"""Bounded IoU loss (Tychsen-Smith and Petersson, 2018, "Improving Object Localization with
Fitness NMS and Bounded IoU Loss")."""

from __future__ import annotations

import torch
from torch import Tensor

from detbox.models.losses.utils import Reduction, WeightedLoss
from detbox.registry import MODELS

__all__ = ["BoundedIoULoss"]


@MODELS.register
class BoundedIoULoss(WeightedLoss):
    """Per coordinate, one minus the best IoU reachable when only that coordinate is off.

    For a centre offset ``dx`` the bound is ``max(0, (w - 2|dx|) / (w + 2|dx|))`` with the target
    width ``w``; for a width it is ``min(w / w_pred, w_pred / w)``. The four ``1 - bound`` terms
    go through a smooth L1 with switch point ``beta``. The element-wise loss is (N, 4).

    Args:
        beta: smooth-L1 switch point on ``1 - bound``.
        eps: guards the divisions.
        loss_weight: scale of the reduced loss.
        reduction: ``'mean'``, ``'sum'`` or ``'none'``.
    """

    def __init__(
        self, *, beta: float = 0.2, eps: float = 1e-3, loss_weight: float = 1.0,
        reduction: Reduction = "mean",
    ) -> None:
        super().__init__(loss_weight=loss_weight, reduction=reduction)
        self.beta = beta
        self.eps = eps

    def elementwise(self, pred: Tensor, target: Tensor) -> Tensor:
        """(N, 4) predicted and target xyxy boxes -> (N, 4) losses (dx, dy, dw, dh)."""
        pred_ctr = (pred[:, :2] + pred[:, 2:]) / 2
        pred_wh = pred[:, 2:] - pred[:, :2]
        target = target.detach()
        target_ctr = (target[:, :2] + target[:, 2:]) / 2
        target_wh = target[:, 2:] - target[:, :2]
        shift = 2 * (target_ctr - pred_ctr).abs()
        loss_ctr = 1 - ((target_wh - shift) / (target_wh + shift + self.eps)).clamp(min=0)
        loss_wh = 1 - torch.minimum(target_wh / (pred_wh + self.eps),
                                    pred_wh / (target_wh + self.eps))
        loss = torch.cat([loss_ctr, loss_wh], dim=1)
        return torch.where(loss < self.beta, 0.5 * loss * loss / self.beta, loss - 0.5 * self.beta)
