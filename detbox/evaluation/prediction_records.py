"""Per-image prediction records: what ``detbox infer`` writes to ``preds.json``.

A record describes one image (or video frame) for people and scripts: its size and each
detection with an xywh box, the class (contiguous label, dataset category id and name), the
score and, for instance masks, a compressed RLE. ``records_to_coco_results`` turns a mapping of
records into the COCO results list that ``results.py`` reads and checks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from detbox.evaluation.results import masks_to_rles
from detbox.structures.instances import Instances

__all__ = ["prediction_record", "records_to_coco_results"]


def prediction_record(
    instances: Instances,
    height: int,
    width: int,
    class_names: Sequence[str],
    cat_ids: Sequence[int],
) -> dict[str, Any]:
    """One image's entry of ``preds.json``.

    Args:
        instances: detections in the image's coordinates: ``boxes`` (N, 4) xyxy, ``labels``
            (N,), ``scores`` (N,), optional ``masks`` (N, H, W) binary and ``mask_iou`` (N,).
        height: the image height the boxes refer to (the upright image for a rotated photo).
        width: the image width the boxes refer to.
        class_names: ``class_names[label]`` names a label.
        cat_ids: ``cat_ids[label]`` is the dataset category id of a label.

    Returns:
        ``{"height", "width", "predictions": [{"bbox": {x_min, y_min, width, height},
        "class": {label, category_id, name}, "score", "mask"?, "iou_score"?}, ...]}``.
    """
    rles = masks_to_rles(instances.masks) if instances.masks is not None else None
    predictions = []
    for i in range(len(instances)):
        x1, y1, x2, y2 = (float(v) for v in instances.boxes[i])
        label = int(instances.labels[i])
        entry: dict[str, Any] = {
            "bbox": {"x_min": x1, "y_min": y1, "width": x2 - x1, "height": y2 - y1},
            "class": {"label": label, "category_id": cat_ids[label], "name": class_names[label]},
            "score": float(instances.scores[i]),
        }
        if rles is not None:
            entry["mask"] = rles[i]
        if instances.mask_iou is not None:
            entry["iou_score"] = float(instances.mask_iou[i])
        predictions.append(entry)
    return {"height": height, "width": width, "predictions": predictions}


def records_to_coco_results(records: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """``preds.json`` records as a COCO results list.

    Args:
        records: ``{name: prediction_record(...)}`` in input order; a name is an image path
            or ``video#frame``.

    Returns:
        One dict per detection; ``image_id`` is the record's position in ``records`` and
        ``file_name`` its name, ``bbox`` ``[x, y, w, h]``, plus ``segmentation`` for masks.
    """
    results = []
    for image_id, (name, record) in enumerate(records.items()):
        for pred in record["predictions"]:
            box = pred["bbox"]
            entry = {"image_id": image_id, "file_name": name,
                     "category_id": pred["class"]["category_id"],
                     "bbox": [box["x_min"], box["y_min"], box["width"], box["height"]],
                     "score": pred["score"]}
            if "mask" in pred:
                entry["segmentation"] = pred["mask"]
            results.append(entry)
    return results
