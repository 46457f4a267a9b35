"""The one reduction rule every detbox loss follows.

Each loss computes an element-wise loss, multiplies it by an optional ``weight`` (broadcast from
the leading dimensions, e.g. (N,) over (N, C)), then reduces: ``'none'`` keeps elements,
``'sum'`` adds them, ``'mean'`` divides the sum by ``avg_factor`` when the caller gives one (e.g.
the number of positive anchors, which a head knows and a loss cannot) and by the element count
otherwise. Finally the result is scaled by the loss's ``loss_weight``.
"""

from __future__ import annotations

from typing import Literal, get_args

import torch
from torch import Tensor, nn

from detbox.errors import ConfigError

__all__ = [
    "REDUCTIONS", "Reduction", "WeightedLoss", "check_reduction", "labels_to_one_hot",
    "reduce_loss",
]

Reduction = Literal["none", "mean", "sum"]
REDUCTIONS = get_args(Reduction)


def check_reduction(reduction: str) -> str:
    if reduction not in REDUCTIONS:
        raise ConfigError(f"loss reduction must be one of {REDUCTIONS}, got '{reduction}'")
    return reduction


def reduce_loss(
    loss: Tensor,
    weight: Tensor | None = None,
    reduction: str = "mean",
    avg_factor: float | Tensor | None = None,
) -> Tensor:
    """Weight and reduce an element-wise loss (see the module docstring)."""
    if weight is not None:
        weight = weight.to(loss.dtype)
        while weight.dim() < loss.dim():
            weight = weight.unsqueeze(-1)
        loss = loss * weight
    if reduction == "none":
        return loss
    if reduction == "sum" or loss.numel() == 0:
        return loss.sum()  # an empty sum is 0 and keeps the graph, where a mean would be NaN
    if avg_factor is not None:
        return loss.sum() / avg_factor
    return loss.mean()


class WeightedLoss(nn.Module):
    """The rule above as a module: subclasses define only the element-wise loss.

    Args:
        loss_weight: scale of the reduced loss.
        reduction: ``'mean'``, ``'sum'`` or ``'none'``.
    """

    def __init__(self, *, loss_weight: float = 1.0, reduction: Reduction = "mean") -> None:
        super().__init__()
        self.loss_weight = loss_weight
        self.reduction = check_reduction(reduction)

    def elementwise(self, pred: Tensor, target: Tensor) -> Tensor:
        """The unreduced loss of ``pred`` against ``target`` (shapes: see the subclass)."""
        raise NotImplementedError

    def forward(
        self,
        pred: Tensor,
        target: Tensor,
        weight: Tensor | None = None,
        avg_factor: float | Tensor | None = None,
    ) -> Tensor:
        """``loss_weight * reduce_loss(elementwise(pred, target), weight, reduction, avg_factor)``.

        The loss is computed in float32 (also under autocast): ``pred`` and a floating-point
        ``target`` are cast; integer labels are left as they are.

        Args:
            pred: predictions (logits, deltas or boxes; shapes in the subclass docstring).
            target: labels or targets for ``pred``.
            weight: optional element weights, broadcast from the leading dimensions.
            avg_factor: divisor of the summed loss for ``reduction='mean'``.
        """
        if target.is_floating_point():
            target = target.float()
        loss = self.elementwise(pred.float(), target)
        return self.loss_weight * reduce_loss(loss, weight, self.reduction, avg_factor)


def labels_to_one_hot(labels: Tensor, num_classes: int) -> Tensor:
    """(N,) labels in ``0..num_classes`` (``num_classes`` = background) -> (N, num_classes) float.

    Background rows are all zero, the sigmoid classifiers' way of saying "no class".
    """
    one_hot = torch.zeros(labels.shape[0], num_classes + 1, device=labels.device)
    one_hot.scatter_(1, labels.long().unsqueeze(1), 1.0)
    return one_hot[:, :num_classes]
