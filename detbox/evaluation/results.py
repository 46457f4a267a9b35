"""COCO-format detection results: made from ``Instances``, checked, read and written.

A results list holds one dict per detection, ``{"image_id", "category_id", "bbox": [x, y, w, h],
"score"}`` plus ``"segmentation"`` (compressed RLE, ``counts`` as str) for instance masks. It is the
format of COCO test-server submissions, so files written here are read by any COCO tool. Reading
and checking a file is ``results_file`` (re-exported here).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any

import torch
from pycocotools import mask as mask_util
from torch import Tensor

from detbox.evaluation.results_file import (
    ResultsError,
    check_results,
    format_id_ranges,
    load_results,
    read_json,
)
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
