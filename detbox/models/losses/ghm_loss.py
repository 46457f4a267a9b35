"""Gradient harmonizing losses GHM-C and GHM-R (Li et al., 2019, "Gradient Harmonized
Single-stage Detector").

Each element's loss is weighted by the inverse density of its gradient norm ``g``: the range
``[0, 1]`` of ``g`` is cut into ``bins`` equal bins, and an element in a bin holding ``n`` of the
``T`` valid elements gets weight ``T / n``, divided by the number of non-empty bins. The many easy
negatives (``g`` near 0) and the few outliers (``g`` near 1) share their bins with many others and
are down-weighted; the rest are up-weighted. With ``momentum > 0`` a bin's count is a running
average over iterations, so the weights do not jump with one batch.

Both losses normalize by their own count ``T`` of valid elements (the weights already balance the
examples), so the ``avg_factor`` a head passes to every loss is accepted and ignored.
"""

from __future__ import annotations

from typing import Annotated

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from detbox.models.losses.utils import labels_to_one_hot
from detbox.registry import MODELS
from detbox.typecheck import Positive, Range

__all__ = ["GHMC", "GHMR", "gradient_density_weights"]


def gradient_density_weights(
    g: Tensor, valid: Tensor, bins: int, momentum: float = 0.0,
    running_counts: Tensor | None = None,
) -> Tensor:
    """Per-element weights ``T / (count of g's bin) / (non-empty bins)``.

    Args:
        g: (...) gradient norms in ``[0, 1]`` (no gradient flows through them).
        valid: (...) bool, the elements that count (``T = valid.sum()``, at least 1).
        bins: number of equal bins over ``[0, 1]`` (1 falls into the last bin).
        momentum: with ``running_counts``, a bin's count becomes
            ``momentum * previous + (1 - momentum) * current``.
        running_counts: (bins,) float running counts, updated in place for non-empty bins.

    Returns:
        (...) float weights, zero for invalid elements.
    """
    g = g.detach().float()
    total = valid.sum().clamp(min=1).float()
    index = (g * bins).floor().clamp(max=bins - 1).long()
    index = torch.where(valid, index, torch.full_like(index, bins))  # bin ``bins``: invalid
    counts = torch.bincount(index.flatten(), minlength=bins + 1)[:bins].float()
    non_empty = counts > 0
    if running_counts is not None and momentum > 0:
        updated = momentum * running_counts + (1 - momentum) * counts
        running_counts.copy_(torch.where(non_empty, updated, running_counts))
        counts = running_counts
    num_non_empty = non_empty.sum().clamp(min=1).float()
    per_bin = torch.where(non_empty, total / counts.clamp(min=1e-12), counts.new_zeros(()))
    per_bin = torch.cat([per_bin / num_non_empty, per_bin.new_zeros(1)])
    return per_bin[index]


class _GHMLoss(nn.Module):
    """Bins, momentum and the running bin counts (a buffer: saved and moved with the model).

    Only training updates and uses the running counts; in eval mode (e.g. a validation loss)
    the weights come from the batch's own counts.
    """

    def __init__(self, bins: int, momentum: float, loss_weight: float) -> None:
        super().__init__()
        self.bins = bins
        self.momentum = momentum
        self.loss_weight = loss_weight
        self.register_buffer("running_counts", torch.zeros(bins))

    def weights(self, g: Tensor, valid: Tensor) -> Tensor:
        running = self.running_counts if self.training else None
        return gradient_density_weights(g, valid, self.bins, self.momentum, running)


@MODELS.register
class GHMC(_GHMLoss):
    """GHM-C: sigmoid cross-entropy weighted by the density of ``g = |sigmoid(x) - y|``.

    Args:
        bins: gradient-norm bins (the paper's ablation uses 30; 10 is the lighter default).
        momentum: running-average factor of the bin counts (0: this batch's counts only).
        loss_weight: scale of the loss.
    """

    def __init__(
        self,
        *,
        bins: Annotated[int, Positive] = 10,
        momentum: Annotated[float, Range(ge=0, lt=1)] = 0.75,
        loss_weight: float = 1.0,
    ) -> None:
        super().__init__(bins, momentum, loss_weight)

    def forward(
        self, pred: Tensor, target: Tensor, weight: Tensor | None = None,
        avg_factor: float | Tensor | None = None,
    ) -> Tensor:
        """Loss of (N, C) logits against (N,) labels in ``0..C`` (``C`` = background) or (N, C)
        binary targets.

        Args:
            weight: (N,) or (N, C) label weights; elements with weight 0 are not counted.
            avg_factor: ignored (GHM normalizes by the count of valid elements).
        """
        pred = pred.float()
        if target.dim() == pred.dim() - 1:
            target = labels_to_one_hot(target, pred.shape[-1])
        target = target.float()
        valid = _valid_mask(weight, pred)
        g = (pred.detach().sigmoid() - target).abs()
        weights = self.weights(g, valid)
        loss = F.binary_cross_entropy_with_logits(pred, target, weights, reduction="sum")
        return self.loss_weight * loss / valid.sum().clamp(min=1)


@MODELS.register
class GHMR(_GHMLoss):
    """GHM-R: the authentic smooth L1 weighted by the density of its gradient norm.

    The loss of a difference ``d`` is ``sqrt(d**2 + mu**2) - mu``, its gradient norm
    ``g = |d| / sqrt(d**2 + mu**2)``.

    Args:
        mu: the ASL1 smoothing constant.
        bins: gradient-norm bins.
        momentum: running-average factor of the bin counts.
        loss_weight: scale of the loss.
    """

    def __init__(
        self,
        *,
        mu: Annotated[float, Range(gt=0)] = 0.02,
        bins: Annotated[int, Positive] = 10,
        momentum: Annotated[float, Range(ge=0, lt=1)] = 0.7,
        loss_weight: float = 1.0,
    ) -> None:
        super().__init__(bins, momentum, loss_weight)
        self.mu = mu

    def forward(
        self, pred: Tensor, target: Tensor, weight: Tensor | None = None,
        avg_factor: float | Tensor | None = None,
    ) -> Tensor:
        """Loss of (N, 4) regressions against (N, 4) targets (deltas, usually of positives).

        Args:
            weight: (N,) or (N, 4) weights; elements with weight 0 are not counted.
            avg_factor: ignored (GHM normalizes by the count of valid elements).
        """
        diff = pred.float() - target.float()
        root = torch.sqrt(diff * diff + self.mu * self.mu)
        loss = root - self.mu
        valid = _valid_mask(weight, diff)
        weights = self.weights((diff / root).abs(), valid)
        return self.loss_weight * (loss * weights).sum() / valid.sum().clamp(min=1)


def _valid_mask(weight: Tensor | None, like: Tensor) -> Tensor:
    """(N, K) bool: where ``weight`` (None, (N,) or (N, K)) is positive."""
    if weight is None:
        return torch.ones_like(like, dtype=torch.bool)
    if weight.dim() < like.dim():
        weight = weight.unsqueeze(-1)
    return (weight > 0).expand_as(like)
