"""Sigmoid focal loss (Lin et al., 2017), the RetinaNet classification loss."""

from __future__ import annotations

from torch import Tensor
from torchvision.ops import sigmoid_focal_loss

from detbox.models.losses.utils import Reduction, WeightedLoss, labels_to_one_hot
from detbox.registry import MODELS

__all__ = ["FocalLoss"]


@MODELS.register
class FocalLoss(WeightedLoss):
    """``-alpha_t (1 - p_t)**gamma log(p_t)`` per (box, class), one sigmoid per class.

    Down-weights the many easy negatives of dense detectors so that they do not swamp the few
    positives. Sum over anchors and classes and pass ``avg_factor=num_positives`` to get the
    paper's normalization.

    Args:
        alpha: weight of positives (``1 - alpha`` for negatives); ``-1`` disables it.
        gamma: focusing exponent; 0 gives plain binary cross-entropy.
        loss_weight: scale of the reduced loss.
        reduction: ``'mean'``, ``'sum'`` or ``'none'`` (see ``detbox.models.losses.utils``).
    """

    def __init__(
        self,
        *,
        alpha: float = 0.25,
        gamma: float = 2.0,
        loss_weight: float = 1.0,
        reduction: Reduction = "mean",
    ) -> None:
        super().__init__(loss_weight=loss_weight, reduction=reduction)
        self.alpha = alpha
        self.gamma = gamma

    def elementwise(self, pred: Tensor, target: Tensor) -> Tensor:
        """Focal loss of logits against labels; weights in ``forward`` are (N,) or (N, C).

        Args:
            pred: (N, C) logits.
            target: (N,) int64 labels in ``0..C`` (``C`` = background) or (N, C) float targets.
        """
        if target.dim() == pred.dim() - 1:
            target = labels_to_one_hot(target, pred.shape[-1])
        return sigmoid_focal_loss(
            pred, target.to(pred.dtype), alpha=self.alpha, gamma=self.gamma, reduction="none"
        )
