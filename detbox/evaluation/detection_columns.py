"""Box detection results as NumPy columns, built in one pass over the result dicts.

Scoring 500k detections column-wise needs their image ids, category ids, scores and boxes as
arrays. Reading them out of the parsed JSON is the one loop over every result that cannot be
avoided; :func:`plain_box_columns` makes it a few C-level passes (``itemgetter``, ``map(type,
...)``) and, in the same go, tells whether every result is *plainly* valid (exact int ids known
to the ground truth, numbers, a list of four numbers). Only when one is not does the caller
(``results_file.check_results``) look at results one by one to name the culprit, and then read
the columns with :func:`any_box_columns`, which accepts what pycocotools would.
"""

from __future__ import annotations

import itertools
import numbers
import operator
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["BoxColumns", "any_box_columns", "plain_box_columns"]

_FIELDS = tuple(map(operator.itemgetter, ("image_id", "category_id", "score", "bbox")))
_NUMBER_TYPES = {int, float}
# An id no ground truth uses: what results with ids that are not whole numbers get.
_NO_ID = np.iinfo(np.int64).min


@dataclass(frozen=True)
class BoxColumns:
    """Box results, one row per result in the results' order (the order breaks score ties).

    Attributes:
        image_id: (N,) int64.
        category_id: (N,) int64.
        score: (N,) float64.
        bbox: (N, 4) float64 ``[x, y, width, height]``.
    """

    image_id: np.ndarray
    category_id: np.ndarray
    score: np.ndarray
    bbox: np.ndarray

    def __len__(self) -> int:
        return len(self.score)


def _empty() -> BoxColumns:
    ids = np.zeros(0, dtype=np.int64)
    return BoxColumns(ids, ids.copy(), np.zeros(0), np.zeros((0, 4)))


def _all_of(values: Any, types: set[type]) -> bool:
    return set(map(type, values)) <= types


def plain_box_columns(
    results: list[Any], image_ids: np.ndarray, category_ids: np.ndarray | None
) -> BoxColumns | None:
    """The columns of ``results`` if every result is plainly valid, else None.

    Plainly valid: a dict with an int ``image_id`` in ``image_ids``, an int ``category_id`` (in
    ``category_ids`` unless that is None), an int or float ``score`` and a ``bbox`` list of four
    ints or floats. Types are tested exactly, so bools are not numbers here.

    Args:
        results: the parsed results list.
        image_ids: (I,) the ground truth's image ids.
        category_ids: (C,) the ground truth's category ids; None accepts any int.
    """
    if not results:
        return _empty()
    try:
        image, category, score, bbox = (list(map(field, results)) for field in _FIELDS)
    except (KeyError, TypeError):  # a missing key, or a result that is not a dict
        return None
    if not (
        _all_of(image, {int}) and _all_of(category, {int}) and _all_of(score, _NUMBER_TYPES)
        and _all_of(bbox, {list}) and set(map(len, bbox)) == {4}
    ):
        return None
    flat = list(itertools.chain.from_iterable(bbox))
    if not _all_of(flat, _NUMBER_TYPES):
        return None
    count = len(results)
    try:
        columns = BoxColumns(
            image_id=np.fromiter(image, np.int64, count),
            category_id=np.fromiter(category, np.int64, count),
            score=np.fromiter(score, np.float64, count),
            bbox=np.fromiter(flat, np.float64, 4 * count).reshape(count, 4),
        )
    except OverflowError:  # an id beyond int64, or a number beyond float64
        return None
    if not np.isin(columns.image_id, image_ids).all():
        return None
    if category_ids is not None and not np.isin(columns.category_id, category_ids).all():
        return None
    return columns


def _id_key(value: Any) -> int:
    """An id as pycocotools' dict lookups see it: ``1.0``, ``np.int64(1)`` and ``True`` are
    ``1``."""
    if isinstance(value, numbers.Real) and float(value).is_integer():
        number = int(value)
        if _NO_ID < number <= np.iinfo(np.int64).max:
            return number
    return int(_NO_ID)


def any_box_columns(results: list[dict[str, Any]]) -> BoxColumns:
    """The columns of results that passed the full check but not :func:`plain_box_columns`.

    Ids that are not whole numbers (a proposal's free-form category) become an id that matches
    nothing, as they match no ground-truth id in pycocotools.
    """
    if not results:
        return _empty()
    count = len(results)
    return BoxColumns(
        image_id=np.fromiter((_id_key(r["image_id"]) for r in results), np.int64, count),
        category_id=np.fromiter((_id_key(r["category_id"]) for r in results), np.int64, count),
        score=np.array([r["score"] for r in results], dtype=np.float64),
        bbox=np.array([r["bbox"] for r in results], dtype=np.float64).reshape(count, 4),
    )
