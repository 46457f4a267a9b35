"""pycocotools' box COCOeval, column-wise in NumPy, with the same precision and recall bits.

pycocotools walks (image, category) groups in Python, one dict per detection; here every step
runs over arrays of all detections at once:

1. detections and ground truth become columns grouped by (category, image) (by image only
   when ``use_cats`` is False), detections ranked by score inside their group with a stable
   sort over the results' order, and cut to the largest ``maxDets``;
2. the IoU of every (detection, ground truth) pair of a group, with the operations of
   pycocotools' C ``bbIou``, keeping the pairs that reach the lowest threshold (the others can
   never match);
3. greedy matching for all IoU thresholds and area ranges together, in rounds over the rank
   of a detection among those of its group that have a pair (``coco_matching``);
4. ``COCOeval.accumulate``'s cumulative sums and interpolation per category, vectorised over
   thresholds and area ranges (``coco_accumulate``).

Every comparison and floating-point operation is the one pycocotools makes, in the same order,
so the arrays are bit-identical to pycocotools', not just close.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from operator import itemgetter

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import Params

from detbox.evaluation.coco_accumulate import accumulate, score_order
from detbox.evaluation.coco_matching import match_rounds, rank_in_group
from detbox.evaluation.detection_columns import BoxColumns

__all__ = ["evaluate_boxes"]

# (detection, ground truth) pairs whose IoU is computed at once; bounds the memory of dense
# groups such as 1,000 class-agnostic proposals per image.
_PAIR_CHUNK = 1 << 21


@dataclass(frozen=True)
class _Table:
    """Boxes grouped by (category, image) (or image), in pycocotools' order inside a group.

    Attributes:
        group: (N,) group index, non-decreasing.
        column: (N,) the category column (K axis) of each box; 0 when categories are pooled.
        bbox: (N, 4) float64 ``[x, y, w, h]``.
        area: (N,) float64, the area the size ranges test.
    """

    group: np.ndarray
    column: np.ndarray
    bbox: np.ndarray
    area: np.ndarray


def _positions(ids: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Index of each of ``ids`` in ``table`` (unique ids, any order); -1 where absent."""
    if not len(table):
        return np.full(len(ids), -1, dtype=np.int64)
    low, high = int(table.min()), int(table.max())
    if low >= 0 and high < 16 * (len(ids) + len(table)) + (1 << 16):  # small ids: a lookup
        lookup = np.full(high + 2, -1, dtype=np.int64)
        lookup[table] = np.arange(len(table))
        return lookup[np.where((ids >= 0) & (ids <= high), ids, high + 1)]
    order = np.argsort(table, kind="stable")
    sorted_table = table[order]
    at = np.minimum(np.searchsorted(sorted_table, ids), len(table) - 1)
    return np.where(sorted_table[at] == ids, order[at], -1)


def _gt_table(
    coco_gt: COCO, img_ids: np.ndarray, cat_ids: np.ndarray, use_cats: bool
) -> tuple[_Table, np.ndarray, np.ndarray]:
    """The evaluated ground truth; also its annotation ids (G,) and crowd flags (G,).

    Crowds are the ignored ground truth: pycocotools overwrites a dataset ``ignore`` flag with
    ``iscrowd`` before matching, so that flag changes nothing here either.
    """
    anns = coco_gt.dataset.get("annotations", [])
    count = len(anns)
    image = np.fromiter(map(itemgetter("image_id"), anns), np.int64, count)
    category = np.fromiter(map(itemgetter("category_id"), anns), np.int64, count)
    img_pos, cat_pos = _positions(image, img_ids), _positions(category, cat_ids)
    keep = np.flatnonzero((img_pos >= 0) & (cat_pos >= 0))
    img_pos, cat_pos = img_pos[keep], cat_pos[keep]
    if use_cats:
        group = cat_pos * len(img_ids) + img_pos
        order = np.argsort(group, kind="stable")
    else:
        group = img_pos
        order = np.lexsort((cat_pos, group))
    kept = [anns[i] for i in keep[order]]
    n = len(kept)
    crowd = np.array([a.get("iscrowd", 0) for a in kept], dtype=bool).reshape(n)
    table = _Table(
        group=group[order],
        column=cat_pos[order] if use_cats else np.zeros(n, dtype=np.int64),
        bbox=np.array(list(map(itemgetter("bbox"), kept)), dtype=np.float64).reshape(n, 4),
        area=np.fromiter(map(itemgetter("area"), kept), np.float64, n),
    )
    ids = np.fromiter((a.get("id", 0) for a in kept), np.int64, n)
    return table, ids, crowd


def _det_table(
    columns: BoxColumns, img_ids: np.ndarray, cat_ids: np.ndarray, use_cats: bool, max_det: int
) -> tuple[_Table, np.ndarray, np.ndarray]:
    """The evaluated detections, each group ranked by score and cut to ``max_det``.

    Returns:
        The table, the scores (N,) and the rank of each detection in its group (N,).
    """
    img_pos = _positions(columns.image_id, img_ids)
    cat_pos = _positions(columns.category_id, cat_ids)
    keep = np.flatnonzero((img_pos >= 0) & (cat_pos >= 0))
    img_pos, cat_pos, score = img_pos[keep], cat_pos[keep], columns.score[keep]
    if use_cats:
        group = cat_pos * len(img_ids) + img_pos
        order = score_order(group, score)
    else:
        group = img_pos
        order = score_order(group, score, ties=cat_pos)
    group = group[order]
    rank = rank_in_group(group)
    top = order[rank < max_det]
    rows = keep[top]
    bbox = columns.bbox[rows]
    table = _Table(
        group=group[rank < max_det],
        column=cat_pos[top] if use_cats else np.zeros(len(top), dtype=np.int64),
        bbox=bbox,
        area=bbox[:, 2] * bbox[:, 3],
    )
    return table, score[top], rank[rank < max_det]


def box_iou(det: np.ndarray, gt: np.ndarray, crowd: np.ndarray) -> np.ndarray:
    """pycocotools' ``bbIou`` on aligned pairs, operation for operation.

    Args:
        det: (P, 4) float64 ``[x, y, w, h]`` detections.
        gt: (P, 4) float64 ground-truth boxes.
        crowd: (P,) bool; a crowd's union is the detection's area.

    Returns:
        (P,) float64 IoU, 0 where the boxes do not overlap.
    """
    dx, dy, dw, dh = det.T
    gx, gy, gw, gh = gt.T
    w = np.fmin(dw + dx, gw + gx) - np.fmax(dx, gx)
    h = np.fmin(dh + dy, gh + gy) - np.fmax(dy, gy)
    inter = w * h
    det_area = dw * dh
    union = np.where(crowd, det_area, det_area + gw * gh - inter)
    overlap = ~(w <= 0) & ~(h <= 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(overlap, inter / np.where(overlap, union, 1.0), 0.0)


def _matchable_pairs(
    dets: _Table, gts: _Table, crowd: np.ndarray, min_iou: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The (detection, ground truth) pairs of a group with IoU >= ``min_iou``.

    Returns:
        Detection indexes (P,), ground-truth indexes (P,) and IoUs (P,), by detection.
    """
    first = np.searchsorted(gts.group, dets.group, side="left")
    counts = np.searchsorted(gts.group, dets.group, side="right") - first
    ends = np.cumsum(counts)
    found_det, found_gt, found_iou = [], [], []
    start = 0
    while start < len(counts):
        base = ends[start] - counts[start]
        stop = max(int(np.searchsorted(ends, base + _PAIR_CHUNK, side="right")), start + 1)
        det = np.repeat(np.arange(start, stop), counts[start:stop])
        offsets = np.arange(len(det)) - np.repeat(ends[start:stop] - counts[start:stop] - base,
                                                  counts[start:stop])
        gt = first[det] + offsets
        iou = box_iou(dets.bbox[det], gts.bbox[gt], crowd[gt])
        hit = iou >= min_iou
        found_det.append(det[hit])
        found_gt.append(gt[hit])
        found_iou.append(iou[hit])
        start = stop
    if not found_det:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty.copy(), np.zeros(0)
    return np.concatenate(found_det), np.concatenate(found_gt), np.concatenate(found_iou)


def _outside(area: np.ndarray, ranges: np.ndarray) -> np.ndarray:
    """(A, N) bool: ``area < lo or area > hi`` for each of the A ranges."""
    return (area[None] < ranges[:, :1]) | (area[None] > ranges[:, 1:])


def evaluate_boxes(
    coco_gt: COCO,
    columns: BoxColumns,
    *,
    img_ids: Sequence[int],
    cat_ids: Sequence[int],
    max_dets: Sequence[int],
    use_cats: bool,
    iou_thrs: Sequence[float] | None = None,
) -> tuple[np.ndarray, np.ndarray, dict]:
    """Match and accumulate box detections exactly as pycocotools' ``COCOeval`` does.

    Args:
        coco_gt: the ground truth.
        columns: the detections (``detection_columns``), in the results' order.
        img_ids: images to evaluate.
        cat_ids: categories to evaluate; with ``use_cats`` False their order is the order in
            which pycocotools lists a pooled image's boxes.
        max_dets: the detection limits.
        use_cats: match within a category; False pools the categories (proposal recall).
        iou_thrs: IoU thresholds, as ``COCOeval.params.iouThrs``; COCO's ten (0.5:0.95) when
            None.

    Returns:
        precision (T, R, K, A, M), recall (T, K, A, M) and the parameters that index them
        (``iou_thrs``, ``area_labels``, ``max_dets``, ``cat_ids``, ``img_ids``).
    """
    params = Params(iouType="bbox")
    images = np.unique(np.asarray(list(img_ids), dtype=np.int64))
    cats = np.asarray(list(dict.fromkeys(int(c) for c in cat_ids)), dtype=np.int64)
    if use_cats:
        cats = np.unique(cats)
    limits = sorted(int(m) for m in max_dets)
    if iou_thrs is not None:
        params.iouThrs = np.asarray(list(iou_thrs), dtype=np.float64)
    thresholds = np.minimum(np.asarray(params.iouThrs, dtype=np.float64), 1 - 1e-10)
    ranges = np.asarray(params.areaRng, dtype=np.float64)
    gts, gt_ids, crowd = _gt_table(coco_gt, images, cats, use_cats)
    dets, scores, rank = _det_table(columns, images, cats, use_cats, limits[-1])
    gt_ignored = crowd[None] | _outside(gts.area, ranges)  # (A, G)
    pair_det, pair_gt, pair_iou = _matchable_pairs(dets, gts, crowd, float(thresholds.min()))
    candidates, matched = match_rounds(
        pair_det, pair_gt, pair_iou, dets.group, thresholds, gt_ignored, crowd
    )
    num_columns = len(cats) if use_cats else 1
    precision, recall = accumulate(
        matched_gt=matched, candidates=candidates, gt_ids=gt_ids, gt_ignored=gt_ignored,
        gt_column=gts.column, det_outside=_outside(dets.area, ranges), det_column=dets.column,
        scores=scores, rank=rank, num_columns=num_columns, max_dets=limits,
        rec_thrs=np.asarray(params.recThrs, dtype=np.float64),
    )
    return precision, recall, {
        "iou_thrs": np.asarray(params.iouThrs),
        "area_labels": tuple(params.areaRngLbl),
        "max_dets": tuple(limits),
        "cat_ids": tuple(int(c) for c in cats) if use_cats else (-1,),
        "img_ids": tuple(int(i) for i in images),
    }
