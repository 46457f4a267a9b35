"""Hard negative mining: train the classifier on the negatives it gets most wrong."""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["hard_negative_mask"]


def hard_negative_mask(
    loss: Tensor, positive: Tensor, negative: Tensor, neg_pos_ratio: float
) -> Tensor:
    """Per image, the ``neg_pos_ratio * num_positives`` negatives with the highest loss.

    SSD (Liu et al., 2016) keeps at most three negatives per positive, so that the ~8,700
    background priors of an image do not swamp its few matched ones. An image without
    positives keeps no negatives (its classification loss is then zero, as in the paper).

    Args:
        loss: (B, N) classification loss of each prior (e.g. softmax cross-entropy against
            its target), only read for ranking.
        positive: (B, N) bool, priors matched to a GT box.
        negative: (B, N) bool, background priors that may be chosen (not ignored ones).
        neg_pos_ratio: negatives kept per positive.

    Returns:
        (B, N) bool mask of the chosen negatives; ties are broken by the lower prior index.
    """
    num_neg = (positive.sum(dim=1, keepdim=True).float() * neg_pos_ratio).floor().long()
    num_neg = torch.minimum(num_neg, negative.sum(dim=1, keepdim=True))
    ranked = loss.detach().float().masked_fill(~negative, -torch.inf)
    order = ranked.argsort(dim=1, descending=True, stable=True)
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(order.shape[1], device=order.device).expand_as(order))
    return (rank < num_neg) & negative
