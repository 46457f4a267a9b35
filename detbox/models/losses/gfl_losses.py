"""Generalized Focal Loss (Li et al., 2020): Quality Focal Loss and Distribution Focal Loss."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from detbox.models.losses.utils import Reduction, WeightedLoss
from detbox.registry import MODELS

__all__ = ["DistributionFocalLoss", "QualityFocalLoss"]


@MODELS.register
class QualityFocalLoss(WeightedLoss):
    """``BCE(sigmoid(x), y) * |y - sigmoid(x)|**beta`` per (box, class) with soft targets.

    The class output learns the localization quality itself: a positive's target at its GT
    class is the IoU of its predicted box with the GT (0 elsewhere and for negatives), so one
    score both ranks and classifies. With 0/1 targets it is a focal loss without alpha.

    Args:
        beta: focusing exponent on the distance to the soft target (2 in the paper).
        loss_weight: scale of the reduced loss.
        reduction: ``'mean'``, ``'sum'`` or ``'none'``.
    """

    def __init__(
        self, *, beta: float = 2.0, loss_weight: float = 1.0, reduction: Reduction = "mean"
    ) -> None:
        super().__init__(loss_weight=loss_weight, reduction=reduction)
        self.beta = beta

    def elementwise(self, pred: Tensor, target: Tensor) -> Tensor:
        """(N, C) logits against (N, C) float soft targets in [0, 1] -> (N, C)."""
        target = target.to(pred.dtype)
        bce = F.binary_cross_entropy_with_logits(pred, target, reduction="none")
        return bce * (target - pred.sigmoid()).abs().pow(self.beta)


@MODELS.register
class DistributionFocalLoss(WeightedLoss):
    """Cross-entropy towards the two bins around a continuous target (the "integral" box side).

    A side's distance ``y`` (in bins, ``0 <= y < n``) is learnt as a distribution over bins
    ``0..n``: ``-(y_r - y) log p(y_l) - (y - y_l) log p(y_r)`` with ``y_l = floor(y)`` and
    ``y_r = y_l + 1``, which concentrates the mass next to the target. Element-wise (N,).

    Args:
        loss_weight: scale of the reduced loss (0.25 in GFL).
        reduction: ``'mean'``, ``'sum'`` or ``'none'``.
    """

    def elementwise(self, pred: Tensor, target: Tensor) -> Tensor:
        """(N, n + 1) bin logits against (N,) float targets in [0, n) -> (N,)."""
        left = target.floor().long()
        right = left + 1
        weight_left = right.to(target.dtype) - target
        weight_right = target - left.to(target.dtype)
        log_probs = F.log_softmax(pred, dim=-1)
        return -(log_probs.gather(1, left[:, None])[:, 0] * weight_left
                 + log_probs.gather(1, right[:, None].clamp(max=pred.shape[1] - 1))[:, 0]
                 * weight_right)
