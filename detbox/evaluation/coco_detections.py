"""Detection results as the annotations COCOeval matches, without ``COCO.loadRes``.

``loadRes`` writes ``area``, ``id`` and ``iscrowd`` into the caller's dicts (so callers had to
copy every result first) and adds a polygon of the box to every box result that nothing reads.
Here each result gets one new, small dict that shares the caller's ``bbox`` list and
``segmentation``, with the fields loadRes would have set, computed the same way: the box area
``w * h`` for boxes, the mask area for masks (MMDetection and Detectron2 rank masks by mask area,
never by box area), ids ``1..N`` in the results' order (which breaks score ties as loadRes does).
"""

from __future__ import annotations

from typing import Any

from pycocotools import mask as mask_util

__all__ = ["detection_annotations"]


def detection_annotations(results: list[dict[str, Any]], coco_type: str) -> list[dict[str, Any]]:
    """One COCOeval detection annotation per result; ``results`` is not modified.

    Args:
        results: COCO result dicts, with ``bbox`` (``coco_type="bbox"``) or a compressed RLE
            ``segmentation`` (``"segm"``).
        coco_type: ``"bbox"`` or ``"segm"``. Segm results rank by ``mask_score`` where they have
            one (Mask Scoring R-CNN: classification score x predicted mask IoU).

    Returns:
        Dicts with ``id``, ``image_id``, ``category_id``, ``score``, ``area``, ``iscrowd`` and the
        geometry (``bbox`` or ``segmentation``).
    """
    if coco_type == "segm":
        return _mask_annotations(results)
    annotations = []
    for index, result in enumerate(results, start=1):
        box = result["bbox"]
        annotations.append({
            "id": index, "image_id": result["image_id"], "category_id": result["category_id"],
            "bbox": box, "score": result["score"], "area": box[2] * box[3], "iscrowd": 0,
        })
    return annotations


def _mask_annotations(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if not results:
        return []
    areas = _mask_areas([r["segmentation"] for r in results])
    return [
        {
            "id": index, "image_id": result["image_id"], "category_id": result["category_id"],
            "segmentation": result["segmentation"],
            "score": result.get("mask_score", result["score"]),
            "area": float(area), "iscrowd": 0,
        }
        for index, (result, area) in enumerate(zip(results, areas, strict=True), start=1)
    ]


# pycocotools' ``area`` fails with NumPy 2 on a list of more than 255 masks (it builds a uint8
# array from the list's length), so the areas are computed in blocks of that size.
_AREA_BLOCK = 255


def _mask_areas(rles: list[dict[str, Any]]) -> list[float]:
    """Areas of the COCO RLE masks ``rles`` in few pycocotools calls (``loadRes`` makes one call
    per result)."""
    areas: list[float] = []
    for start in range(0, len(rles), _AREA_BLOCK):
        areas.extend(mask_util.area(rles[start:start + _AREA_BLOCK]).tolist())
    return areas
