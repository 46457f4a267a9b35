"""Cross-entropy: softmax over classes, or one sigmoid per class / per element."""

from __future__ import annotations

from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor

from detbox.models.losses.utils import Reduction, WeightedLoss, labels_to_one_hot
from detbox.registry import MODELS

__all__ = ["CrossEntropyLoss"]


@MODELS.register
class CrossEntropyLoss(WeightedLoss):
    """Classification loss of the two-stage heads (box classifier, RPN objectness, masks).

    With ``use_sigmoid=False`` (softmax), ``pred`` is (N, C + 1) logits with background at index
    ``C`` and ``target`` (N,) int64 labels; the element-wise loss is (N,).
    With ``use_sigmoid=True`` (binary cross-entropy per element), ``target`` either has the shape
    of ``pred`` (float 0/1: RPN objectness (N,), mask logits (N, H, W)) or is (N,) int64 labels
    in ``0..C`` for (N, C) logits, where ``C`` means background (all-zero row).

    Args:
        use_sigmoid: binary cross-entropy instead of softmax cross-entropy.
        class_weight: optional per-class weights, length C + 1 (softmax) or C (sigmoid).
        loss_weight: scale of the reduced loss.
        reduction: ``'mean'``, ``'sum'`` or ``'none'`` (see ``detbox.models.losses.utils``).
    """

    def __init__(
        self,
        *,
        use_sigmoid: bool = False,
        class_weight: Sequence[float] | None = None,
        loss_weight: float = 1.0,
        reduction: Reduction = "mean",
    ) -> None:
        super().__init__(loss_weight=loss_weight, reduction=reduction)
        self.use_sigmoid = use_sigmoid
        self.class_weight = None if class_weight is None else [float(w) for w in class_weight]

    def elementwise(self, pred: Tensor, target: Tensor) -> Tensor:
        """Cross-entropy of logits ``pred`` against labels or same-shape binary ``target``."""
        class_weight = None if self.class_weight is None else pred.new_tensor(self.class_weight)
        if self.use_sigmoid:
            if target.shape != pred.shape:
                target = labels_to_one_hot(target, pred.shape[-1])
            loss = F.binary_cross_entropy_with_logits(pred, target.to(pred.dtype), reduction="none")
            if class_weight is not None:
                loss = loss * class_weight
        else:
            loss = F.cross_entropy(pred, target.long(), weight=class_weight, reduction="none")
        return loss
