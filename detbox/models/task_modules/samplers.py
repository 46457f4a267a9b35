"""Pick a fixed-size, class-balanced subset of assigned boxes for a loss (RPN, RoI heads).

Every sampler has ``sample(assign_result) -> (pos_inds, neg_inds)``; they differ in *which*
positives and negatives they pick: uniformly at random (``RandomSampler``), negatives spread
over IoU bins (``IoUBalancedNegSampler``, Libra R-CNN), or the ones the box head currently gets
most wrong (``OHEMSampler``: ``hard_mining = True``, its ``sample`` also takes each candidate's
loss, which the RoI head computes).
"""

from __future__ import annotations

import torch
from torch import Tensor

from detbox.errors import ConfigError
from detbox.models.task_modules.assigners import BACKGROUND, AssignResult
from detbox.registry import TASK_UTILS

__all__ = ["IoUBalancedNegSampler", "OHEMSampler", "RandomSampler"]


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

    hard_mining = False

    def __init__(
        self, *, num: int, pos_fraction: float, neg_pos_ub: float = -1,
        add_gt_as_proposals: bool = False,
    ) -> None:
        if num <= 0 or not 0.0 <= pos_fraction <= 1.0:
            raise ConfigError(
                f"{type(self).__name__} needs num > 0 and 0 <= pos_fraction <= 1, got {num}, "
                f"{pos_fraction}"
            )
        self.num = num
        self.pos_fraction = pos_fraction
        self.neg_pos_ub = neg_pos_ub
        self.add_gt_as_proposals = add_gt_as_proposals

    def sample(self, assign_result: AssignResult) -> tuple[Tensor, Tensor]:
        """Indices (into the assigned boxes) of the sampled positives and negatives, int64."""
        positives, negatives = _candidates(assign_result)
        positives = _random_subset(positives, self.max_positives)
        return positives, _random_subset(negatives, self.num_negatives(positives.numel()))

    @property
    def max_positives(self) -> int:
        return int(self.num * self.pos_fraction)

    def num_negatives(self, num_pos: int) -> int:
        """Negatives to sample once ``num_pos`` positives are chosen (``num`` in all, at most
        ``neg_pos_ub`` per positive)."""
        num_neg = self.num - num_pos
        if self.neg_pos_ub >= 0:
            num_neg = min(num_neg, int(self.neg_pos_ub * max(1, num_pos)))
        return num_neg


@TASK_UTILS.register
class OHEMSampler(RandomSampler):
    """Online hard example mining (Shrivastava et al., 2016): the hardest candidates by loss.

    The RoI head scores every candidate RoI with its box head (no gradient) and passes each
    one's loss; the sampler keeps the highest-loss positives (up to ``num * pos_fraction``) and
    fills ``num`` with the highest-loss negatives. Same arguments as ``RandomSampler``.
    """

    hard_mining = True

    def sample(  # type: ignore[override]
        self, assign_result: AssignResult, hardness: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """Like ``RandomSampler.sample``; ``hardness`` (N,) is each candidate's current loss."""
        if hardness is None:
            raise ConfigError(
                "OHEMSampler needs each candidate's loss: use it as an RoI head's sampler "
                "(roi_head.sampler), where the box head scores the candidates"
            )
        positives, negatives = _candidates(assign_result)
        positives = _hardest(positives, hardness, self.max_positives)
        return positives, _hardest(negatives, hardness, self.num_negatives(positives.numel()))


@TASK_UTILS.register
class IoUBalancedNegSampler(RandomSampler):
    """Libra R-CNN's IoU-balanced sampling (Pang et al., 2019): negatives spread over IoU.

    Random sampling picks mostly easy negatives (IoU near 0, the vast majority); here the
    negatives' IoU range ``[floor, max IoU]`` is cut into ``num_bins`` equal bins and each bin
    contributes up to an equal share, picked at random; shortfalls are filled at random from the
    remaining negatives. With ``floor_thr >= 0``, ``floor_fraction`` of the negatives come at
    random from those below ``floor_thr`` (IoU exactly 0 when ``floor_thr == 0``) and only the
    others are binned; ``floor_thr < 0`` bins all negatives from IoU 0. Positives are balanced
    over the GT instances as in the paper (each object contributes up to an equal share, the
    rest filled at random), or sampled uniformly with ``instance_balanced_pos=False``.

    Args:
        num, pos_fraction, neg_pos_ub, add_gt_as_proposals: as in ``RandomSampler``.
        floor_thr: IoU below which negatives are "floor" negatives (``-1``: none are).
        floor_fraction: share of the negatives taken from the floor set.
        num_bins: IoU bins of the other negatives.
        instance_balanced_pos: balance the positives over the GT objects.
    """

    def __init__(
        self, *, num: int, pos_fraction: float, neg_pos_ub: float = -1,
        add_gt_as_proposals: bool = False, floor_thr: float = -1.0,
        floor_fraction: float = 0.0, num_bins: int = 3, instance_balanced_pos: bool = True,
    ) -> None:
        super().__init__(num=num, pos_fraction=pos_fraction, neg_pos_ub=neg_pos_ub,
                         add_gt_as_proposals=add_gt_as_proposals)
        if not 0.0 <= floor_fraction <= 1.0 or num_bins < 1:
            raise ConfigError("IoUBalancedNegSampler needs 0 <= floor_fraction <= 1 and "
                              f"num_bins >= 1, got {floor_fraction}, {num_bins}")
        self.floor_thr = floor_thr
        self.floor_fraction = floor_fraction
        self.num_bins = num_bins
        self.instance_balanced_pos = instance_balanced_pos

    def sample(self, assign_result: AssignResult) -> tuple[Tensor, Tensor]:
        positives, negatives = _candidates(assign_result)
        if self.instance_balanced_pos:
            positives = _instance_balanced(positives, assign_result.matched_gt[positives],
                                           self.max_positives)
        else:
            positives = _random_subset(positives, self.max_positives)
        count = self.num_negatives(positives.numel())
        if negatives.numel() <= count:
            return positives, negatives
        return positives, self._balanced_negatives(negatives, assign_result.max_iou[negatives],
                                                   count)

    def _balanced_negatives(self, negatives: Tensor, ious: Tensor, count: int) -> Tensor:
        """``count`` of the (M,) ``negatives`` (IoUs (M,)): IoU bins, floor, random fill."""
        if self.floor_thr > 0:
            floor, binned = ious < self.floor_thr, ious >= self.floor_thr
        elif self.floor_thr == 0:
            floor, binned = ious == 0, ious > 0
        else:
            floor, binned = torch.zeros_like(ious, dtype=torch.bool), ious > self.floor_thr
        low = max(self.floor_thr, 0.0)
        num_binned = int(count * (1 - self.floor_fraction))
        binned_inds = torch.nonzero(binned).flatten()
        if binned_inds.numel() > num_binned:
            chosen = (self._by_bins(binned_inds, ious, low, num_binned) if self.num_bins >= 2
                      else _random_subset(binned_inds, num_binned))
        else:
            chosen = binned_inds
        chosen = torch.cat([chosen, _random_subset(torch.nonzero(floor).flatten(),
                                                   count - chosen.numel())])
        if chosen.numel() < count:
            rest = torch.ones_like(ious, dtype=torch.bool)
            rest[chosen] = False
            chosen = torch.cat([chosen, _random_subset(torch.nonzero(rest).flatten(),
                                                       count - chosen.numel())])
        return negatives[chosen]

    def _by_bins(self, inds: Tensor, ious: Tensor, low: float, count: int) -> Tensor:
        """Up to ``count // num_bins`` of ``inds`` from each IoU bin of ``[low, max IoU)``, then a
        random fill from the rest of ``inds`` up to ``count``."""
        high = float(ious.max())
        width = (high - low) / self.num_bins
        per_bin = count // self.num_bins
        chosen = []
        for b in range(self.num_bins):
            start, end = low + b * width, low + (b + 1) * width
            in_bin = inds[(ious[inds] >= start) & (ious[inds] < end)]
            chosen.append(_random_subset(in_bin, per_bin))
        chosen = torch.cat(chosen)
        if chosen.numel() < count:
            rest = torch.ones_like(ious, dtype=torch.bool)
            rest[chosen] = False
            left = inds[rest[inds]]
            chosen = torch.cat([chosen, _random_subset(left, count - chosen.numel())])
        return chosen


def _candidates(assign_result: AssignResult) -> tuple[Tensor, Tensor]:
    """Indices of the positive and of the background boxes (ignored boxes are neither)."""
    positives = torch.nonzero(assign_result.matched_gt >= 0).flatten()
    negatives = torch.nonzero(assign_result.matched_gt == BACKGROUND).flatten()
    return positives, negatives


def _instance_balanced(positives: Tensor, gt_inds: Tensor, count: int) -> Tensor:
    """Up to ``count`` of the (P,) ``positives`` (matched to ``gt_inds`` (P,)), about equally
    many per GT object: at most ``round(count / objects) + 1`` each, then a random fill from the
    others (or a random cut) to exactly ``min(count, P)``."""
    if positives.numel() <= count:
        return positives
    objects = gt_inds.unique()
    per_object = int(round(count / objects.numel())) + 1
    chosen = torch.cat([_random_subset(positives[gt_inds == g], per_object) for g in objects])
    if chosen.numel() > count:
        return _random_subset(chosen, count)
    rest = positives[~torch.isin(positives, chosen)]
    return torch.cat([chosen, _random_subset(rest, count - chosen.numel())])


def _hardest(indices: Tensor, hardness: Tensor, count: int) -> Tensor:
    """The ``count`` of ``indices`` with the highest ``hardness``, hardest first."""
    if count <= 0:
        return indices[:0]
    order = hardness[indices].argsort(descending=True)[:count]
    return indices[order]


def _random_subset(indices: Tensor, count: int) -> Tensor:
    if count <= 0:
        return indices[:0]
    if indices.numel() <= count:
        return indices
    chosen = torch.randperm(indices.numel(), device=indices.device)[:count]
    return indices[chosen]
