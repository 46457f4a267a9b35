"""COCOeval's greedy matching, vectorised over groups, IoU thresholds and area ranges.

pycocotools matches the detections of one (image, category) group in score order; for each it
takes, among the ground truths still free (a crowd is never used up), the one of highest IoU at
or above the threshold, the later one on a tie, and a ground truth that counts before one that
is ignored. A detection's choice depends only on the earlier detections of its own group, so
round ``r`` matches the ``r``-th detection (among those with a pair) of every group at once.
"""

from __future__ import annotations

import numpy as np

__all__ = ["match_rounds", "rank_in_group"]


def rank_in_group(group: np.ndarray) -> np.ndarray:
    """(N,) position of each element among the equal, adjacent elements of ``group``."""
    index = np.arange(len(group))
    first = np.r_[True, group[1:] != group[:-1]] if len(group) else np.zeros(0, dtype=bool)
    return index - np.maximum.accumulate(np.where(first, index, 0))


def match_rounds(
    pair_det: np.ndarray,
    pair_gt: np.ndarray,
    pair_iou: np.ndarray,
    det_group: np.ndarray,
    thresholds: np.ndarray,
    gt_ignored: np.ndarray,
    crowd: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Match detections to ground truth for every IoU threshold and area range.

    Args:
        pair_det: (P,) detection index of each matchable pair; detections are sorted by group,
            then by rank inside it.
        pair_gt: (P,) ground-truth index of each pair; ground truths are in pycocotools' order
            inside a group (its tie-break order).
        pair_iou: (P,) float64 IoU of each pair.
        det_group: (N,) group of each detection, non-decreasing.
        thresholds: (T,) the IoU a match needs (pycocotools' ``min(t, 1 - 1e-10)``).
        gt_ignored: (A, G) bool, ground truth ignored in each area range (crowd or outside).
        crowd: (G,) bool, crowd ground truth (may be matched any number of times).

    Returns:
        The detections with a pair (C,), sorted, and the ground truth each one matched,
        (T, A, C) int64, -1 where it matched nothing.
    """
    candidates, pair_cand = np.unique(pair_det, return_inverse=True)
    matched = np.full((len(thresholds), gt_ignored.shape[0], len(candidates)), -1, np.int64)
    if not len(candidates):
        return candidates, matched
    cand_group = det_group[candidates]
    round_of = rank_in_group(cand_group)
    order = np.lexsort((pair_gt, pair_iou, pair_cand, round_of[pair_cand]))
    pair_cand, pair_gt, pair_iou = pair_cand[order], pair_gt[order], pair_iou[order]
    bounds = np.searchsorted(round_of[pair_cand], np.arange(round_of.max() + 2))
    taken = np.zeros((len(thresholds), *gt_ignored.shape), dtype=bool)  # (T, A, G)
    for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
        cand, gt = pair_cand[lo:hi], pair_gt[lo:hi]
        starts = np.flatnonzero(np.r_[True, cand[1:] != cand[:-1]])
        chosen = _round(gt, pair_iou[lo:hi], starts, thresholds, gt_ignored, crowd, taken)
        matched[:, :, cand[starts]] = chosen
    return candidates, matched


def _round(
    gt: np.ndarray,
    iou: np.ndarray,
    starts: np.ndarray,
    thresholds: np.ndarray,
    gt_ignored: np.ndarray,
    crowd: np.ndarray,
    taken: np.ndarray,
) -> np.ndarray:
    """One detection per group: its pairs are ``starts[s]:starts[s + 1]``, sorted by IoU then
    ground-truth order, so the best match is the last allowed pair, preferring counted ground
    truth. Marks the chosen ground truth taken; returns it, (T, A, S), -1 for none."""
    count = len(gt)
    allowed = (crowd[gt] | ~taken[:, :, gt]) & (iou >= thresholds[:, None, None])
    key = np.where(allowed, np.arange(count) + count * ~gt_ignored[:, gt], -1)  # (T, A, P)
    best = np.maximum.reduceat(key, starts, axis=2)
    hit = best >= 0
    chosen = np.where(hit, gt[np.where(best >= count, best - count, np.maximum(best, 0))], -1)
    t, a, s = np.nonzero(hit)
    taken[t, a, chosen[t, a, s]] = True
    return chosen
