"""COCO-format detection results: made from ``Instances``, checked, read and written.

A results list holds one dict per detection, ``{"image_id", "category_id", "bbox": [x, y, w, h],
"score"}`` plus ``"segmentation"`` (compressed RLE, ``counts`` as str) for instance masks. It is the
format of COCO test-server submissions, so files written here are read by any COCO tool.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from pycocotools import mask as mask_util
from pycocotools.coco import COCO
from torch import Tensor

from detbox.errors import DetboxError
from detbox.structures.instances import Instances
from detbox.utils.io import atomic_write_text

__all__ = [
    "ResultsError",
    "check_results",
    "format_id_ranges",
    "instances_to_coco_results",
    "load_results",
    "masks_to_rles",
    "read_json",
    "write_results",
]

# What each evaluation type reads from a result, besides ids and score.
_GEOMETRY_KEY = {"bbox": "bbox", "proposal": "bbox", "segm": "segmentation"}


class ResultsError(DetboxError):
    """A results file or list that cannot be scored against its ground truth."""


def masks_to_rles(masks: Tensor) -> list[dict[str, Any]]:
    """Encode binary masks as compressed COCO RLEs in one pycocotools call.

    Args:
        masks: (N, H, W) bool or uint8 masks over the whole image (nonzero is foreground).

    Returns:
        N dicts ``{"size": [H, W], "counts": str}``, ready for JSON.
    """
    if masks.ndim != 3:
        raise ValueError(f"masks must be (N, H, W), got shape {tuple(masks.shape)}")
    if masks.is_floating_point():
        raise TypeError("masks must be binary (bool or uint8); threshold mask probabilities first")
    if masks.shape[0] == 0:
        return []
    binary = (masks if masks.dtype == torch.bool else masks != 0).detach().view(torch.uint8)
    # pycocotools wants (H, W, N) in Fortran order, which is (N, W, H) in C order: one
    # transpose-copy where the masks live (cheap on a GPU) and one encode call for all masks.
    fortran = binary.transpose(1, 2).contiguous().cpu()
    rles = mask_util.encode(fortran.numpy().transpose(2, 1, 0))
    for rle in rles:
        rle["counts"] = rle["counts"].decode("ascii")
    return rles


def instances_to_coco_results(
    image_id: int, instances: Instances, cat_ids: Sequence[int], with_masks: bool = True
) -> list[dict[str, Any]]:
    """Turn one image's detections into COCO result dicts.

    Args:
        image_id: the COCO image id.
        instances: detections in original image coordinates: ``boxes`` (N, 4) xyxy, ``labels``
            (N,) contiguous, ``scores`` (N,), optional ``masks`` (N, H, W) binary and
            ``mask_iou`` (N,); with both, results get ``mask_score = score * mask_iou``,
            which segm evaluation ranks by.
        cat_ids: ``cat_ids[label]`` is the category id a label stands for.
        with_masks: add ``segmentation`` when ``instances.masks`` is set; turn off to skip the
            RLE encoding when only boxes are evaluated.

    Returns:
        One dict per detection with ``bbox`` as ``[x, y, w, h]`` floats.
    """
    if len(instances) == 0:
        return []
    if instances.scores is None:
        raise ValueError("detections need scores to be written as COCO results")
    boxes = instances.boxes.detach().to("cpu", torch.float64)
    xywh = torch.cat([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], dim=1).tolist()
    scores = instances.scores.detach().float().cpu().tolist()
    categories = _labels_to_cat_ids(instances.labels, cat_ids)
    image_id = int(image_id)
    results = [
        {"image_id": image_id, "category_id": cat, "bbox": box, "score": score}
        for box, score, cat in zip(xywh, scores, categories, strict=True)
    ]
    if with_masks and instances.masks is not None:
        for result, rle in zip(results, masks_to_rles(instances.masks), strict=True):
            result["segmentation"] = rle
        if instances.mask_iou is not None:
            mask_scores = (instances.scores * instances.mask_iou).detach().float().cpu().tolist()
            for result, mask_score in zip(results, mask_scores, strict=True):
                result["mask_score"] = mask_score
    return results


def _labels_to_cat_ids(labels: Tensor, cat_ids: Sequence[int]) -> list[int]:
    labels = labels.detach().to("cpu", torch.int64)
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= len(cat_ids)):
        raise ValueError(
            f"labels must lie in 0..{len(cat_ids) - 1} (one per category id), "
            f"got {int(labels.min())}..{int(labels.max())}"
        )
    return torch.as_tensor(list(cat_ids), dtype=torch.int64)[labels].tolist()


def write_results(path: str | os.PathLike, results: list[dict[str, Any]]) -> None:
    """Write a results list as compact JSON; the file appears whole or not at all."""
    atomic_write_text(path, json.dumps(results, separators=(",", ":")))


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
) -> None:
    """Raise ResultsError naming the first result that cannot be evaluated.

    Checks what pycocotools would otherwise fail on with a bare assertion or KeyError (or, for
    unknown ids, silently ignore): the list shape, the keys ``iou_type`` needs, image ids and
    category ids present in the ground truth, and RLE sizes matching their image.

    Args:
        results: the loaded results.
        coco_gt: the ground truth.
        iou_type: ``"bbox"``, ``"segm"`` or ``"proposal"``.
        source: how to name the results in messages (e.g. the file name).
        gt_name: how to name the ground truth in messages.
    """
    _check_is_list_of_objects(results, source)
    geometry = _GEOMETRY_KEY[iou_type]
    images = coco_gt.imgs
    valid_cats = set(coco_gt.cats)
    for index, result in enumerate(results):
        problem = _result_problem(result, geometry, iou_type, images, valid_cats, gt_name)
        if problem:
            raise ResultsError(f"{source}: result #{index} {problem}")


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


def _is_hashable(value: Any) -> bool:
    return isinstance(value, (int, str, float)) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


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
