"""Box regression losses: on deltas (L1, smooth L1, balanced L1) or on decoded boxes
(IoU, GIoU).

Each takes (N, 4) predictions (deltas, or xyxy boxes for IoU / GIoU) and (N, 4) targets of the same
kind, with optional (N,) or (N, 4) weights; ``avg_factor`` is typically the number of positive
boxes (not times 4).
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.ops import generalized_box_iou_loss

from detbox.errors import ConfigError
from detbox.models.losses.utils import Reduction, WeightedLoss
from detbox.registry import MODELS

__all__ = ["BalancedL1Loss", "GIoULoss", "IoULoss", "L1Loss", "SmoothL1Loss", "aligned_iou"]


@MODELS.register
class L1Loss(WeightedLoss):
    """``|pred - target|`` per coordinate (RetinaNet's regression loss in recent codebases)."""

    def elementwise(self, pred: Tensor, target: Tensor) -> Tensor:
        return (pred - target).abs()


@MODELS.register
class SmoothL1Loss(WeightedLoss):
    """Huber-like loss, quadratic below ``beta`` and linear above.

    Args:
        beta: the switch point: 1/9 in the original RetinaNet and RPN, 1.0 in Fast R-CNN;
            0 makes it L1.
        loss_weight: scale of the reduced loss.
        reduction: ``'mean'``, ``'sum'`` or ``'none'``.
    """

    def __init__(
        self, *, beta: float = 1.0, loss_weight: float = 1.0, reduction: Reduction = "mean"
    ) -> None:
        super().__init__(loss_weight=loss_weight, reduction=reduction)
        self.beta = beta

    def elementwise(self, pred: Tensor, target: Tensor) -> Tensor:
        return F.smooth_l1_loss(pred, target, beta=self.beta, reduction="none")


@MODELS.register
class GIoULoss(WeightedLoss):
    """``1 - GIoU`` between predicted and target xyxy boxes (Rezatofighi et al., 2019).

    Scale-invariant, so heads using it decode their deltas first (``reg_decoded_bbox=True``).
    The element-wise loss is per box, (N,); a (N, 4) weight is averaged over coordinates.

    Args:
        eps: guards the divisions for degenerate boxes.
        loss_weight: scale of the reduced loss.
        reduction: ``'mean'``, ``'sum'`` or ``'none'``.
    """

    def __init__(
        self, *, eps: float = 1e-7, loss_weight: float = 1.0, reduction: Reduction = "mean"
    ) -> None:
        super().__init__(loss_weight=loss_weight, reduction=reduction)
        self.eps = eps

    def elementwise(self, pred: Tensor, target: Tensor) -> Tensor:
        return generalized_box_iou_loss(pred, target, reduction="none", eps=self.eps)

    def forward(
        self,
        pred: Tensor,
        target: Tensor,
        weight: Tensor | None = None,
        avg_factor: float | Tensor | None = None,
    ) -> Tensor:
        if weight is not None and weight.dim() > 1:
            weight = weight.mean(dim=-1)
        return super().forward(pred, target, weight, avg_factor)


def aligned_iou(pred: Tensor, target: Tensor, eps: float = 1e-6) -> Tensor:
    """IoU of each (N, 4) xyxy ``pred`` box with the ``target`` box in the same row -> (N,)."""
    top_left = torch.maximum(pred[:, :2], target[:, :2])
    bottom_right = torch.minimum(pred[:, 2:], target[:, 2:])
    inter = (bottom_right - top_left).clamp(min=0).prod(dim=-1)
    area_pred = (pred[:, 2:] - pred[:, :2]).clamp(min=0).prod(dim=-1)
    area_target = (target[:, 2:] - target[:, :2]).clamp(min=0).prod(dim=-1)
    return inter / (area_pred + area_target - inter).clamp(min=eps)


@MODELS.register
class IoULoss(WeightedLoss):
    """IoU loss between predicted and target xyxy boxes (UnitBox, Yu et al., 2016; FCOS).

    ``mode='log'``: ``-log(IoU)`` (UnitBox and the FCOS paper); ``'linear'``: ``1 - IoU``.
    Element-wise per box, (N,); a (N, 4) weight is averaged over coordinates.

    Args:
        mode: ``'log'`` or ``'linear'``.
        eps: lower bound of the IoU inside the log (and of the union).
        loss_weight: scale of the reduced loss.
        reduction: ``'mean'``, ``'sum'`` or ``'none'``.
    """

    def __init__(
        self, *, mode: Literal["log", "linear"] = "log", eps: float = 1e-6,
        loss_weight: float = 1.0, reduction: Reduction = "mean",
    ) -> None:
        super().__init__(loss_weight=loss_weight, reduction=reduction)
        self.mode = mode
        self.eps = eps

    def elementwise(self, pred: Tensor, target: Tensor) -> Tensor:
        iou = aligned_iou(pred, target, self.eps)
        return -iou.clamp(min=self.eps).log() if self.mode == "log" else 1 - iou

    def forward(
        self,
        pred: Tensor,
        target: Tensor,
        weight: Tensor | None = None,
        avg_factor: float | Tensor | None = None,
    ) -> Tensor:
        if weight is not None and weight.dim() > 1:
            weight = weight.mean(dim=-1)
        return super().forward(pred, target, weight, avg_factor)


@MODELS.register
class BalancedL1Loss(WeightedLoss):
    """Libra R-CNN's balanced L1 loss (Pang et al., 2019): more gradient from inliers.

    With ``b = e^(gamma / alpha) - 1`` and ``x = |pred - target|``, the loss is
    ``alpha / b * (b x + 1) * ln(b x / beta + 1) - alpha x`` below ``beta`` and
    ``gamma x + gamma / b - alpha beta`` above: continuous at ``beta``, with gradient
    ``alpha ln(b x / beta + 1)`` that reaches ``gamma`` (the outliers' constant gradient) there.

    Args:
        alpha: scales the inliers' gradient (smaller: a flatter start).
        gamma: the outliers' gradient (the upper bound of the regression error's gradient).
        beta: the switch point between the log and the linear parts.
        loss_weight: scale of the reduced loss.
        reduction: ``'mean'``, ``'sum'`` or ``'none'``.
    """

    def __init__(
        self, *, alpha: float = 0.5, gamma: float = 1.5, beta: float = 1.0,
        loss_weight: float = 1.0, reduction: Reduction = "mean",
    ) -> None:
        super().__init__(loss_weight=loss_weight, reduction=reduction)
        if alpha <= 0 or gamma <= 0 or beta <= 0:
            raise ConfigError(
                f"BalancedL1Loss needs positive alpha, gamma, beta; got {alpha}, {gamma}, {beta}")
        self.alpha, self.gamma, self.beta = alpha, gamma, beta

    def elementwise(self, pred: Tensor, target: Tensor) -> Tensor:
        alpha, gamma, beta = self.alpha, self.gamma, self.beta
        b = math.exp(gamma / alpha) - 1.0
        x = (pred - target).abs()
        inlier = alpha / b * (b * x + 1) * torch.log(b * x / beta + 1) - alpha * x
        outlier = gamma * x + gamma / b - alpha * beta
        return torch.where(x < beta, inlier, outlier)
