"""Checks that a COCO annotation file is usable, each failing with one clear DatasetError line.

They run once when a dataset loads, so a broken file fails before training starts rather than
in a data-loader worker hours later.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any

from detbox.errors import DatasetError
from detbox.registry import closest_match

__all__ = ["check_coco_dict", "check_image_files", "read_coco_json", "select_categories"]

_IMAGE_KEYS = ("id", "file_name", "width", "height")
_ANN_KEYS = ("id", "image_id", "category_id", "bbox")
_CATEGORY_KEYS = ("id", "name")


def read_coco_json(ann_file: str) -> dict[str, Any]:
    """Read the annotation file, turning I/O and JSON problems into DatasetError."""
    if not os.path.isfile(ann_file):
        raise DatasetError(f"{ann_file}: annotation file not found; check ann_file")
    try:
        with open(ann_file, encoding="utf-8") as f:
            data = json.load(f)
    except json.JSONDecodeError as exc:
        raise DatasetError(
            f"{ann_file}: not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno}); "
            "fix or regenerate the annotation file"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{ann_file}: cannot read annotation file ({exc})") from None
    if not isinstance(data, dict):
        raise DatasetError(f"{ann_file}: a COCO annotation file holds a JSON object with "
                           f"'images', 'annotations' and 'categories', not a {type(data).__name__}")
    return data


def _require(entry: Any, keys: Sequence[str], what: str, ann_file: str) -> None:
    if not isinstance(entry, dict):
        raise DatasetError(f"{ann_file}: {what} is not a JSON object; fix the file")
    for key in keys:
        if key not in entry:
            raise DatasetError(
                f"{ann_file}: {what} is missing required key '{key}' (needed: {', '.join(keys)})"
            )


def _check_unique(ids: list[Any], what: str, ann_file: str) -> None:
    seen: set[Any] = set()
    for entry_id in ids:
        if entry_id in seen:
            raise DatasetError(f"{ann_file}: duplicate {what} id {entry_id}; ids must be unique")
        seen.add(entry_id)


def check_coco_dict(data: dict[str, Any], ann_file: str, test_mode: bool) -> None:
    """Check structure, ids and boxes of a COCO dict.

    Raises:
        DatasetError: naming ``ann_file``, the offending entry and what to do about it.
    """
    required = ("images", "categories") if test_mode else ("images", "annotations", "categories")
    for key in required:
        if key not in data:
            hint = " (an image-info file without it needs test_mode=True)" \
                if key == "annotations" else ""
            raise DatasetError(f"{ann_file}: missing required top-level key '{key}'{hint}")
        if not isinstance(data[key], list):
            raise DatasetError(f"{ann_file}: '{key}' must be a list")
    for i, image in enumerate(data["images"]):
        _require(image, _IMAGE_KEYS, f"image entry #{i}", ann_file)
    for i, category in enumerate(data["categories"]):
        _require(category, _CATEGORY_KEYS, f"category entry #{i}", ann_file)
    _check_unique([im["id"] for im in data["images"]], "image", ann_file)
    _check_unique([c["id"] for c in data["categories"]], "category", ann_file)
    annotations = data.get("annotations") or []
    if not isinstance(annotations, list):
        raise DatasetError(f"{ann_file}: 'annotations' must be a list")
    for i, ann in enumerate(annotations):
        _require(ann, _ANN_KEYS, f"annotation entry #{i}", ann_file)
    _check_unique([a["id"] for a in annotations], "annotation", ann_file)
    _check_annotations(data, annotations, ann_file)


def _check_annotations(data: dict[str, Any], annotations: list[dict], ann_file: str) -> None:
    file_names = {im["id"]: im["file_name"] for im in data["images"]}
    cat_ids = {c["id"] for c in data["categories"]}
    for ann in annotations:
        ann_id, image_id, cat_id = ann["id"], ann["image_id"], ann["category_id"]
        if image_id not in file_names:
            raise DatasetError(f"{ann_file}: annotation {ann_id} refers to image id {image_id}, "
                               "which is not in 'images'; fix or remove the annotation")
        if cat_id not in cat_ids:
            known = ", ".join(str(c) for c in sorted(cat_ids, key=str))
            raise DatasetError(
                f"{ann_file}: annotation {ann_id} has category_id {cat_id}, which is not in "
                f"'categories' (ids: {known}); fix the annotation or add the category"
            )
        _check_box(ann, file_names[image_id], ann_file)


def _check_box(ann: dict[str, Any], file_name: str, ann_file: str) -> None:
    bbox = ann["bbox"]
    where = f"{ann_file}: annotation {ann['id']} (image {file_name})"
    if not isinstance(bbox, (list, tuple)) or len(bbox) != 4 or not all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in bbox
    ):
        raise DatasetError(f"{where} has bbox {bbox!r}, not [x, y, width, height] numbers; "
                           "fix or remove the annotation")
    if not bbox[2] > 0 or not bbox[3] > 0:
        raise DatasetError(f"{where} has a box with zero or negative width/height {list(bbox)} "
                           "([x, y, w, h]); fix or remove the annotation")


def check_image_files(paths: Sequence[str], ann_file: str) -> None:
    """Raise DatasetError naming the first image listed in ``ann_file`` that does not exist."""
    missing = [p for p in paths if not os.path.exists(p)]
    if missing:
        more = f" (and {len(missing) - 1} more of {len(paths)} images)" if len(missing) > 1 else ""
        raise DatasetError(f"{missing[0]}: image file not found{more}, listed in {ann_file}; "
                           "check img_dir")


def select_categories(
    categories: list[dict[str, Any]], class_names: Sequence[str] | None, ann_file: str
) -> tuple[list[int], list[str]]:
    """Category ids and names, one per contiguous label.

    Without ``class_names``: every category, sorted by id. With ``class_names``: only those,
    in the given order (label ``i`` is ``class_names[i]``).

    Raises:
        DatasetError: a requested name the file does not have (with the closest matches), or a
            requested name that several categories share.
    """
    by_id = sorted(categories, key=lambda c: c["id"])
    if class_names is None:
        return [c["id"] for c in by_id], [str(c["name"]) for c in by_id]
    if isinstance(class_names, str) or len(set(class_names)) != len(class_names):
        raise DatasetError(f"class_names must be a list of distinct names, got {class_names!r}")
    ids_of: dict[str, list[int]] = {}
    for category in by_id:
        ids_of.setdefault(str(category["name"]), []).append(category["id"])
    missing = [name for name in class_names if name not in ids_of]
    if missing:
        hints = []
        for name in missing:
            match = closest_match(name, list(ids_of))
            hints.append(f"'{name}'" + (f" (closest: '{match}')" if match else ""))
        raise DatasetError(f"{ann_file}: class_names {', '.join(hints)} not among its categories "
                           f"({', '.join(ids_of)}); fix class_names")
    shared = [name for name in class_names if len(ids_of[name]) > 1]
    if shared:
        raise DatasetError(f"{ann_file}: several categories are named '{shared[0]}' "
                           f"(ids {ids_of[shared[0]]}); rename them to select by name")
    return [ids_of[name][0] for name in class_names], [str(name) for name in class_names]
