"""Pick a fixed-size, class-balanced subset of assigned boxes for a loss (RPN, RoI heads)."""

from __future__ import annotations

import torch
from torch import Tensor

from detbox.errors import ConfigError
from detbox.models.task_modules.assigners import BACKGROUND, AssignResult
from detbox.registry import TASK_UTILS

__all__ = ["RandomSampler"]


@TASK_UTILS.register
class RandomSampler:
    """Sample up to ``num`` boxes, at most ``pos_fraction`` of them positive, uniformly at random.

    Ground-truth boxes are not added here: to train on them as proposals, concatenate them to the
    proposals before assigning, so that the assignment, the sampling and the targets agree.

    Args:
        num: boxes per image (e.g. 256 for the RPN, 512 for RoI heads).
        pos_fraction: largest share of positives; negatives fill the rest.
        neg_pos_ub: at most this many negatives per positive (``-1``: no bound).
        add_gt_as_proposals: asks the RoI head using this sampler to prepend the GT boxes to the
            proposals before assigning (Fast R-CNN heads); the sampler itself adds nothing.
    """

    def __init__(
        self, *, num: int, pos_fraction: float, neg_pos_ub: float = -1,
        add_gt_as_proposals: bool = False,
    ) -> None:
        if num <= 0 or not 0.0 <= pos_fraction <= 1.0:
            raise ConfigError(
                f"RandomSampler needs num > 0 and 0 <= pos_fraction <= 1, got {num}, {pos_fraction}"
            )
        self.num = num
        self.pos_fraction = pos_fraction
        self.neg_pos_ub = neg_pos_ub
        self.add_gt_as_proposals = add_gt_as_proposals

    def sample(self, assign_result: AssignResult) -> tuple[Tensor, Tensor]:
        """Indices (into the assigned boxes) of the sampled positives and negatives, int64."""
        positives = torch.nonzero(assign_result.matched_gt >= 0).flatten()
        negatives = torch.nonzero(assign_result.matched_gt == BACKGROUND).flatten()
        positives = _random_subset(positives, int(self.num * self.pos_fraction))
        num_neg = self.num - positives.numel()
        if self.neg_pos_ub >= 0:
            num_neg = min(num_neg, int(self.neg_pos_ub * max(1, positives.numel())))
        return positives, _random_subset(negatives, num_neg)


def _random_subset(indices: Tensor, count: int) -> Tensor:
    if indices.numel() <= count:
        return indices
    chosen = torch.randperm(indices.numel(), device=indices.device)[:count]
    return indices[chosen]
