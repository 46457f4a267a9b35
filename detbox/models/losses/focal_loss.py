"""Sigmoid focal loss (Lin et al., 2017), the RetinaNet classification loss."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.ops import sigmoid_focal_loss

from detbox.models.losses.utils import Reduction, WeightedLoss, labels_to_one_hot, reduce_loss
from detbox.registry import MODELS

__all__ = ["FocalLoss", "label_focal_loss"]


def _positive_flat_indices(labels: Tensor, num_classes: int) -> Tensor:
    """Flat indices into an (N, C) tensor of each foreground row's label entry."""
    rows = torch.nonzero((labels >= 0) & (labels < num_classes)).flatten()
    return rows * num_classes + labels[rows]


class _LabelFocalLoss(torch.autograd.Function):
    """The focal loss of (N, C) logits against (N,) labels with a hand-written gradient.

    With ``v = x`` for the (many) negative entries and ``v = -x`` for the (few) positive ones,
    ``1 - p_t = sigmoid(v)`` =: ``q`` and ``-log p_t = softplus(v)`` =: ``s``, so each entry is
    ``c * q**gamma * s`` with ``c = 1 - alpha`` (negatives) or ``alpha`` (positives), times the
    row weight, and ``d/dv = c * q**gamma * (q + gamma * (1 - q) * s)``. Computing on ``q``
    directly (instead of ``1 - (1 - p)``) is also the more accurate form for tiny ``p``. Every
    pass touches all N * C entries except the sign and ``alpha`` fix-ups, which touch only the
    positives; the autograd version keeps a dozen N * C intermediates, this one keeps three.
    """

    @staticmethod
    def forward(ctx: Any, logits: Tensor, labels: Tensor, weight: Tensor | None, alpha: float,
                gamma: float, reduce: bool) -> Tensor:
        num_classes = logits.shape[1]
        pos = _positive_flat_indices(labels, num_classes)
        flipped = logits.clone()  # v
        flipped.view(-1)[pos] = logits.view(-1)[pos].neg()
        q = torch.sigmoid(flipped)
        s = F.softplus(flipped)
        del flipped
        q_gamma = q.square() if gamma == 2.0 else q.pow(gamma)
        loss = q_gamma * s
        pos_coef, neg_coef = (alpha, 1.0 - alpha) if alpha >= 0 else (1.0, 1.0)
        row = weight.to(loss.dtype)[:, None] if weight is not None else None
        pos_rows = torch.div(pos, num_classes, rounding_mode="floor")
        pos_scale = pos_coef * (row[pos_rows, 0] if row is not None else 1.0)
        pos_loss = loss.view(-1)[pos] * pos_scale
        loss.mul_(neg_coef if row is None else row * neg_coef)
        loss.view(-1)[pos] = pos_loss
        ctx.save_for_backward(q, s, q_gamma, pos, pos_rows, weight)
        ctx.coefs, ctx.gamma, ctx.reduce = (pos_coef, neg_coef), gamma, reduce
        return loss.sum() if reduce else loss

    @staticmethod
    def backward(ctx: Any, grad_out: Tensor) -> tuple:
        q, s, q_gamma, pos, pos_rows, weight = ctx.saved_tensors
        (pos_coef, neg_coef), gamma = ctx.coefs, ctx.gamma
        grad = torch.addcmul(q, 1.0 - q, s, value=gamma).mul_(q_gamma)  # d(q^g s)/dv
        pos_grad = grad.view(-1)[pos] * -pos_coef
        neg_scale = neg_coef * (grad_out if ctx.reduce else 1.0)
        if weight is not None:
            row = weight.to(grad.dtype)[:, None]
            grad.mul_(row * neg_scale)
            pos_grad = pos_grad * row[pos_rows, 0]
        else:
            grad.mul_(neg_scale)
        if not ctx.reduce:
            grad.mul_(grad_out)
            pos_grad = pos_grad * grad_out.reshape(-1)[pos]
        else:
            pos_grad = pos_grad * grad_out
        grad.view(-1)[pos] = pos_grad
        return grad, None, None, None, None, None


def label_focal_loss(logits: Tensor, labels: Tensor, *, alpha: float = 0.25, gamma: float = 2.0,
                     weight: Tensor | None = None, reduce: bool = True) -> Tensor:
    """Sigmoid focal loss of (N, C) logits against (N,) int64 labels in ``0..C``
    (``C`` = background), summed (``reduce``) or per entry (N, C).

    Args:
        weight: optional (N,) row weights (e.g. 0 for ignored anchors), applied inside.
    """
    return _LabelFocalLoss.apply(logits.contiguous(), labels, weight, float(alpha), float(gamma),
                                 reduce)


@MODELS.register
class FocalLoss(WeightedLoss):
    """``-alpha_t (1 - p_t)**gamma log(p_t)`` per (box, class), one sigmoid per class.

    Down-weights the many easy negatives of dense detectors so that they do not swamp the few
    positives. Sum over anchors and classes and pass ``avg_factor=num_positives`` to get the
    paper's normalization. Integer labels (with optional per-row weights) take
    :func:`label_focal_loss`, a few passes over the (N, C) logits; float targets take
    torchvision's ``sigmoid_focal_loss``.

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

    def forward(
        self,
        pred: Tensor,
        target: Tensor,
        weight: Tensor | None = None,
        avg_factor: float | Tensor | None = None,
    ) -> Tensor:
        """See ``WeightedLoss.forward``; (N, C) logits with (N,) labels and (N,) or no weights
        run the fused :func:`label_focal_loss`."""
        fused = (pred.dim() == 2 and target.dim() == 1 and not target.is_floating_point()
                 and (weight is None or weight.shape == target.shape))
        if not fused:
            return super().forward(pred, target, weight, avg_factor)
        reduce = self.reduction != "none" and pred.numel() > 0
        loss = label_focal_loss(pred.float(), target, alpha=self.alpha, gamma=self.gamma,
                                weight=weight, reduce=reduce)
        if reduce and self.reduction == "mean":
            loss = loss / (avg_factor if avg_factor is not None else pred.numel())
        elif not reduce:
            loss = reduce_loss(loss, None, self.reduction, avg_factor)
        return self.loss_weight * loss
