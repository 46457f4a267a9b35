"""pycocotools' 12 summary numbers and their printed lines, computed from accumulated arrays.

Both COCOeval backends leave precision and recall in pycocotools' layout; reading the summary
from those arrays here, rather than from each library's own ``summarize()``, gives the same
numbers and the same lines whichever backend ran, including pycocotools' quirk that the first
AP always reads the ``maxDets=100`` column (-1 when 100 is not a limit).
"""

from __future__ import annotations

import numpy as np

from detbox.evaluation.coco_backends import Accumulated

__all__ = ["mean_valid", "summarize"]

_LINE = " {:<18} {} @[ IoU={:<9} | area={:>6s} | maxDets={:>3d} ] = {:0.3f}"


def mean_valid(values: np.ndarray) -> float:
    """Mean of the entries above -1 (pycocotools' "no ground truth" mark); -1 if none."""
    valid = values[values > -1]
    return float(np.mean(valid)) if valid.size else -1.0


def _value(acc: Accumulated, ap: bool, iou: float | None, area: str, max_dets: int) -> float:
    array = acc.precision if ap else acc.recall
    if iou is not None:
        array = array[np.where(acc.iou_thrs == iou)[0]]
    area_index = [i for i, label in enumerate(acc.area_labels) if label == area]
    det_index = [i for i, limit in enumerate(acc.max_dets) if limit == max_dets]
    array = array[..., area_index, :][..., det_index]
    return mean_valid(array)


def _line(acc: Accumulated, ap: bool, iou: float | None, area: str, max_dets: int,
          value: float) -> str:
    title, kind = ("Average Precision", "(AP)") if ap else ("Average Recall", "(AR)")
    thresholds = (
        f"{acc.iou_thrs[0]:0.2f}:{acc.iou_thrs[-1]:0.2f}" if iou is None else f"{iou:0.2f}"
    )
    return _LINE.format(title, kind, thresholds, area, max_dets, value)


def summarize(acc: Accumulated) -> tuple[list[float], list[str]]:
    """The 12 numbers of pycocotools' ``summarize()`` for detections, and its printed lines.

    Order: AP, AP50, AP75, AP small/medium/large, AR at each of the three ``maxDets``,
    AR small/medium/large.
    """
    last = acc.max_dets[2]
    queries = [
        (True, None, "all", 100), (True, 0.5, "all", last), (True, 0.75, "all", last),
        (True, None, "small", last), (True, None, "medium", last), (True, None, "large", last),
        (False, None, "all", acc.max_dets[0]), (False, None, "all", acc.max_dets[1]),
        (False, None, "all", last),
        (False, None, "small", last), (False, None, "medium", last), (False, None, "large", last),
    ]
    stats = [_value(acc, *query) for query in queries]
    lines = [_line(acc, *query, value) for query, value in zip(queries, stats, strict=True)]
    return stats, lines
