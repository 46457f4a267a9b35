"""``COCOeval.accumulate`` for all categories, IoU thresholds and area ranges at once.

pycocotools ranks the detections of a category by score, takes cumulative true and false
positive counts, and reads precision at each recall threshold from the right-to-left maximum of
the precision curve. Only the true positives move recall up, so everything it reads sits at
them: the first index where recall reaches a threshold is the position of the ``c``-th true
positive (``c`` the least count whose recall ``c / num_gt`` reaches it), and the running
maximum from there is the largest precision at a later true positive. So only the true
positives are visited, each with the false positives before it; the values are the same
floating-point operations pycocotools makes, hence the same bits.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["accumulate", "score_order"]


def score_order(group: np.ndarray, scores: np.ndarray, ties: np.ndarray | None = None
                ) -> np.ndarray:
    """The order that sorts by ``group``, then by descending score, then by ``ties`` (if
    given), then by position, like a stable ``np.lexsort`` of those keys.

    The scores become ranks (``np.unique``) and the keys are packed into one int64 where they
    fit, so that a plain sort of distinct keys does the work: several times faster than the
    stable sorts of 500k floats that ``np.lexsort`` makes.

    Args:
        group: (N,) non-negative int.
        scores: (N,) float64.
        ties: (N,) non-negative int or None.
    """
    count = len(scores)
    if count == 0:
        return np.zeros(0, dtype=np.int64)
    unique, score_rank = np.unique(-scores, return_inverse=True)  # ascending: best first
    keys = [(score_rank, len(unique))]
    if ties is not None:
        keys.append((ties, int(ties.max()) + 1))
    span = int(group.max()) + 1
    for _, size in keys:
        span *= size
    if span * count >= 1 << 62:
        return np.lexsort((*(values for values, _ in reversed(keys)), group))
    packed = group.astype(np.int64)
    for values, size in [*keys, (np.arange(count), count)]:
        packed = packed * size + values
    return np.argsort(packed)


def _detection_flags(
    matched: np.ndarray,
    candidates: np.ndarray,
    gt_ids: np.ndarray,
    gt_ignored: np.ndarray,
    det_outside: np.ndarray,
    order: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """pycocotools' true and false positives, with the detections ranked by ``order``.

    Only detections with a pair (the candidates) can be true positives or depend on the IoU
    threshold; the others are a false positive in each area range that holds them.
    A match counts where the ground-truth id is non-zero (``dtm`` holds the id); a detection is
    ignored when it matched ignored ground truth, or is unmatched and outside the area range.

    Returns:
        False positives among the detections without a pair, (A, N) bool; the ranked
        positions of the candidates (C,), ascending; their true and false positives,
        (A, T, C) bool each.
    """
    num_areas, num_dets = det_outside.shape
    position = np.empty(num_dets, dtype=np.int64)
    position[order] = np.arange(num_dets)
    plain_fp = ~det_outside[:, order]
    cand_pos = position[candidates]
    plain_fp[:, cand_pos] = False
    by_position = np.argsort(cand_pos)
    gt = matched.transpose(1, 0, 2)[:, :, by_position]  # (A, T, C)
    candidates = candidates[by_position]
    hit = gt >= 0
    safe = np.where(hit, gt, 0)
    real = hit & (gt_ids[safe] != 0)
    ignored = (hit & gt_ignored[np.arange(num_areas)[:, None, None], safe]) | (
        ~real & det_outside[:, None, candidates]
    )
    return plain_fp, cand_pos[by_position], real & ~ignored, ~real & ~ignored


def _counts_needed(num_gt: np.ndarray, rec_thrs: np.ndarray) -> np.ndarray:
    """(A, K, R): the least true-positive count whose recall reaches each threshold
    (``num_gt + 1`` when none does), recall computed as pycocotools does."""
    needed = np.zeros((*num_gt.shape, len(rec_thrs)), dtype=np.int64)
    for total in np.unique(num_gt[num_gt > 0]):
        recalls = np.arange(total + 1, dtype=np.float64) / int(total)
        needed[num_gt == total] = np.searchsorted(recalls, rec_thrs, side="left")
    return needed


def _suffix_max(values: np.ndarray, group: np.ndarray) -> np.ndarray:
    """Maximum of ``values`` from each position to the end of its group (``group``
    non-decreasing), exactly: on integer ranks of the values, offset per group."""
    if not len(values):
        return values
    unique, ranks = np.unique(values, return_inverse=True)
    offset = (group[-1] - group) * len(unique)
    best = np.maximum.accumulate((ranks + offset)[::-1])[::-1] - offset
    return unique[best]


def _prefix_counts(flags: np.ndarray) -> np.ndarray:
    """(rows, n + 1): how many of ``flags[:, :i]`` are set, for each i."""
    counts = np.zeros((flags.shape[0], flags.shape[1] + 1), dtype=np.int64)
    np.cumsum(flags, axis=1, out=counts[:, 1:])
    return counts


def _interpolated(
    flags: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    column: np.ndarray,
    needed: np.ndarray,
    num_columns: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Interpolated precision (A * T * K, R) and true-positive counts (A * T * K,).

    Args:
        flags: what :func:`_detection_flags` returns, for detections ranked (category, score).
        column: (n,) category column of each ranked detection.
        needed: (A * T * K, R) from :func:`_counts_needed`.
    """
    plain_fp, cand_pos, cand_tp, cand_fp = flags
    num_areas, num_thrs, num_cands = cand_tp.shape
    cand_tp = cand_tp.reshape(num_areas * num_thrs, num_cands)
    plain_before = _prefix_counts(plain_fp)
    cand_before = _prefix_counts(cand_fp.reshape(cand_tp.shape))
    bounds = np.searchsorted(column, np.arange(num_columns + 1))
    row, cand = np.nonzero(cand_tp)  # rows: area * T + threshold
    at = cand_pos[cand]
    category = column[at]
    start, area = bounds[category], row // num_thrs
    fp_before = (plain_before[area, at] - plain_before[area, start]
                 + cand_before[row, cand] - cand_before[row, np.searchsorted(cand_pos, start)])
    group = row * num_columns + category
    totals = np.bincount(group, minlength=cand_tp.shape[0] * num_columns)
    starts = np.cumsum(totals) - totals
    tp_count = np.arange(len(group)) - starts[group] + 1
    precision = tp_count / (fp_before + tp_count + np.spacing(1))
    if not len(precision):
        return np.zeros(needed.shape), totals
    envelope = _suffix_max(precision, group)
    nth = np.maximum(needed, 1)
    reached = nth <= totals[:, None]
    picked = envelope[np.minimum(starts[:, None] + nth - 1, len(envelope) - 1)]
    return np.where(reached, picked, 0.0), totals


def _top(flags: tuple, column: np.ndarray, rank: np.ndarray, limit: int) -> tuple:
    """The flags and columns of the detections within ``limit`` of their group."""
    keep = rank < limit
    if keep.all():
        return flags, column
    plain_fp, cand_pos, cand_tp, cand_fp = flags
    cand_keep = keep[cand_pos]
    new_position = np.cumsum(keep) - 1
    return (
        plain_fp[:, keep], new_position[cand_pos[cand_keep]],
        cand_tp[:, :, cand_keep], cand_fp[:, :, cand_keep],
    ), column[keep]


def accumulate(
    *,
    matched_gt: np.ndarray,
    candidates: np.ndarray,
    gt_ids: np.ndarray,
    gt_ignored: np.ndarray,
    gt_column: np.ndarray,
    det_outside: np.ndarray,
    det_column: np.ndarray,
    scores: np.ndarray,
    rank: np.ndarray,
    num_columns: int,
    max_dets: Sequence[int],
    rec_thrs: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Precision (T, R, K, A, M) and recall (T, K, A, M), -1 where a category has no counted
    ground truth.

    Per category the detections of all images (those within ``maxDet`` of their group) are
    ranked by a stable sort on descending score over the group order (image, then rank), as
    pycocotools concatenates and merge-sorts them.

    Args:
        matched_gt, candidates: what ``coco_matching.match_rounds`` returns.
        gt_ids: (G,) ground-truth annotation ids.
        gt_ignored: (A, G) bool.
        gt_column: (G,) category column of each ground truth.
        det_outside: (A, N) bool, detection area outside each range.
        det_column: (N,) category column of each detection (detections sorted by group).
        scores: (N,) float64.
        rank: (N,) rank of each detection in its group.
        num_columns: K.
        max_dets: the M detection limits, ascending.
        rec_thrs: (R,) recall thresholds.
    """
    num_areas, num_thrs = det_outside.shape[0], matched_gt.shape[0]
    order = score_order(det_column, scores)
    column, rank = det_column[order], rank[order]
    flags = _detection_flags(matched_gt, candidates, gt_ids, gt_ignored, det_outside, order)
    num_gt = np.stack([
        np.bincount(gt_column[~ignored], minlength=num_columns) for ignored in gt_ignored
    ])  # (A, K)
    needed = np.repeat(_counts_needed(num_gt, rec_thrs), num_thrs, axis=0)  # (A * T, K, R)
    needed = needed.reshape(-1, len(rec_thrs))
    num_gt_rows = np.repeat(num_gt, num_thrs, axis=0).reshape(-1)
    shape = (num_areas, num_thrs, num_columns)
    counted = (num_gt > 0).T  # (K, A)
    precision = np.empty((num_thrs, len(rec_thrs), num_columns, num_areas, len(max_dets)))
    recall = np.empty((num_thrs, num_columns, num_areas, len(max_dets)))
    for m, limit in enumerate(max_dets):
        q, totals = _interpolated(*_top(flags, column, rank, limit), needed, num_columns)
        with np.errstate(divide="ignore", invalid="ignore"):
            rc = totals / num_gt_rows
        q = q.reshape(*shape, len(rec_thrs)).transpose(1, 3, 2, 0)  # (T, R, K, A)
        precision[..., m] = np.where(counted, q, -1.0)
        recall[..., m] = np.where(counted, rc.reshape(shape).transpose(1, 2, 0), -1.0)
    return precision, recall
