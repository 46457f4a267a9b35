"""COCO results files read back and checked against their ground truth.

Reading and checking need only the standard library and pycocotools' ``COCO`` index, so the
``detbox eval`` command, which scores a results file, starts without importing torch.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
from pycocotools.coco import COCO

from detbox.errors import DetboxError
from detbox.evaluation.detection_columns import BoxColumns, any_box_columns, plain_box_columns

__all__ = [
    "ResultsError",
    "check_results",
    "format_id_ranges",
    "load_results",
    "read_json",
]

# What each evaluation type reads from a result, besides ids and score.
_GEOMETRY_KEY = {"bbox": "bbox", "proposal": "bbox", "segm": "segmentation"}


class ResultsError(DetboxError):
    """A results file or list that cannot be scored against its ground truth."""


def read_json(path: str | os.PathLike, what: str, error: type[DetboxError]) -> Any:
    """Load a JSON file, raising ``error`` with one clear line when it is missing or malformed.

    Args:
        path: the file.
        what: how to name the file in messages, e.g. ``"ground-truth file"``.
        error: the DetboxError subclass to raise.
    """
    if not os.path.isfile(path):
        raise error(f"{what} '{os.fspath(path)}' does not exist")
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as exc:
        raise error(f"{what} '{os.fspath(path)}' is not valid JSON: {exc}") from None
    except UnicodeDecodeError:
        raise error(f"{what} '{os.fspath(path)}' is not a UTF-8 text (JSON) file") from None


def load_results(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Read a results file, checking only that it holds a list of objects.

    Checks against the ground truth are :func:`check_results`.
    """
    results = read_json(path, "results file", ResultsError)
    _check_is_list_of_objects(results, f"results file '{os.fspath(path)}'")
    return results


def _check_is_list_of_objects(results: Any, source: str) -> None:
    if not isinstance(results, list):
        hint = " (is it a ground-truth file?)" if isinstance(results, dict) else ""
        raise ResultsError(
            f"{source} must hold a JSON list of detections "
            f"[{{image_id, category_id, bbox, score}}, ...], got {_json_type(results)}{hint}"
        )
    if set(map(type, results)) <= {dict}:
        return
    index = next((i for i, r in enumerate(results) if not isinstance(r, dict)), None)
    if index is not None:
        raise ResultsError(
            f"{source}: result #{index} is {_json_type(results[index])}, not an object"
        )


def _json_type(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}
    if value is None:
        return "null"
    return names.get(type(value), "a number" if isinstance(value, (int, float)) else "a value")


def check_results(
    results: Any, coco_gt: COCO, iou_type: str, source: str = "results", gt_name: str = "the GT"
) -> BoxColumns | None:
    """Raise ResultsError naming the first result that cannot be evaluated.

    Checks what pycocotools would otherwise fail on with a bare assertion or KeyError (or, for
    unknown ids, silently ignore): the list shape, the keys ``iou_type`` needs, image ids and
    category ids present in the ground truth, and RLE sizes matching their image.

    Box results are read into columns in the same pass (the NumPy COCOeval backend scores
    those); only when one is not plainly valid are they looked at one by one.

    Args:
        results: the loaded results.
        coco_gt: the ground truth.
        iou_type: ``"bbox"``, ``"segm"`` or ``"proposal"``.
        source: how to name the results in messages (e.g. the file name).
        gt_name: how to name the ground truth in messages.

    Returns:
        The results as columns for ``bbox`` and ``proposal``; None for ``segm``.
    """
    geometry = _GEOMETRY_KEY[iou_type]
    images = coco_gt.imgs
    valid_cats = set(coco_gt.cats)
    if geometry == "bbox" and isinstance(results, list):
        columns = plain_box_columns(
            results, _int_ids(images), None if iou_type == "proposal" else _int_ids(valid_cats)
        )
        if columns is not None:
            return columns
    _check_is_list_of_objects(results, source)
    suspects = (
        _unusual_box_results(results, images, None if iou_type == "proposal" else valid_cats)
        if geometry == "bbox" else range(len(results))
    )
    for index in suspects:
        problem = _result_problem(results[index], geometry, iou_type, images, valid_cats, gt_name)
        if problem:
            raise ResultsError(f"{source}: result #{index} {problem}")
    return any_box_columns(results) if geometry == "bbox" else None


def _int_ids(ids: Any) -> np.ndarray:
    """The int ids among ``ids`` (dict keys of the ground truth) as an int64 array."""
    return np.array([i for i in ids if type(i) is int], dtype=np.int64)


def _unusual_box_results(
    results: list[dict[str, Any]], images: dict[int, Any], valid_cats: set[int] | None
) -> Iterator[int]:
    """Indexes of the box results that are not plainly valid, for the full check to look at.

    Plainly valid: int ids found in the ground truth (any category id, but one, when
    ``valid_cats`` is None), an int or float score and a list of four int or float numbers.
    Exact type tests (bools are not numbers here) keep this pass over 500k results short.
    """
    numbers = {float, int}
    for index, result in enumerate(results):
        image_id, category_id, box = (
            result.get("image_id"), result.get("category_id"), result.get("bbox")
        )
        if not (
            type(image_id) is int and image_id in images
            and ("category_id" in result if valid_cats is None
                 else type(category_id) is int and category_id in valid_cats)
            and type(result.get("score")) in numbers
            and type(box) is list and len(box) == 4
            and type(box[0]) in numbers and type(box[1]) in numbers
            and type(box[2]) in numbers and type(box[3]) in numbers
        ):
            yield index


def _result_problem(
    result: dict[str, Any],
    geometry: str,
    iou_type: str,
    images: dict[int, dict[str, Any]],
    valid_cats: set[int],
    gt_name: str,
) -> str | None:
    for key in ("image_id", "category_id", "score", geometry):
        if key not in result:
            return f"has no '{key}', which {iou_type} evaluation needs"
    image_id = result["image_id"]
    if not _is_hashable(image_id) or image_id not in images:
        return f"has image_id {image_id!r}, which is not an image in {gt_name}"
    category_id = result["category_id"]
    if iou_type != "proposal" and (not _is_hashable(category_id) or category_id not in valid_cats):
        return (
            f"has category_id {category_id!r}, which is not a category in {gt_name}; "
            f"valid ids: {format_id_ranges(valid_cats)}"
        )
    if not _is_number(result["score"]):
        return f"has score {result['score']!r}; expected a number"
    if geometry == "bbox":
        return _bbox_problem(result["bbox"])
    return _rle_problem(result["segmentation"], images[image_id])


# NumPy scalars too: results made in Python rather than read from JSON often hold them.
_NUMBER_TYPES = (int, float, np.integer, np.floating)


def _is_hashable(value: Any) -> bool:
    return isinstance(value, (*_NUMBER_TYPES, str)) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, _NUMBER_TYPES) and not isinstance(value, bool)


def _bbox_problem(bbox: Any) -> str | None:
    if isinstance(bbox, list) and len(bbox) == 4 and all(_is_number(v) for v in bbox):
        return None
    return f"has bbox {bbox!r}; expected [x, y, width, height] numbers"


def _rle_problem(segmentation: Any, image: dict[str, Any]) -> str | None:
    if not (
        isinstance(segmentation, dict)
        and isinstance(segmentation.get("counts"), str)
        and isinstance(segmentation.get("size"), list)
    ):
        return "has a segmentation that is not a compressed RLE {'size': [h, w], 'counts': str}"
    expected = [image.get("height"), image.get("width")]
    if segmentation["size"] != expected:
        return (
            f"has a segmentation of size {segmentation['size']}, but image {image['id']} is "
            f"{expected} (height, width)"
        )
    return None


def format_id_ranges(ids: set[int] | Sequence[int]) -> str:
    """Write integer ids compactly, e.g. ``{1, 2, 3, 5}`` as ``"1-3, 5"``."""
    ordered = sorted(ids)
    if not ordered:
        return "none"
    if not all(isinstance(i, (int, np.integer)) for i in ordered):
        return ", ".join(str(i) for i in ordered)
    parts, start, prev = [], ordered[0], ordered[0]
    for value in [*ordered[1:], None]:
        if value is not None and value == prev + 1:
            prev = value
            continue
        parts.append(str(start) if start == prev else f"{start}-{prev}")
        if value is not None:
            start = prev = value
    return ", ".join(parts)
