"""Plausible detections made from ground truth, for the evaluation tests.

Real detector output needs a trained model; these results have its texture (jittered boxes,
ragged masks, random scores, misses, false positives, a few wrong classes) at no cost, under a
fixed seed, so metric code can be checked against pycocotools on real annotations.
"""

from __future__ import annotations

import os
import warnings
from typing import Any

import numpy as np
from pycocotools import mask as mask_util
from pycocotools.coco import COCO

from detbox.evaluation.coco_scoring import load_coco_gt

__all__ = ["simulate_detections"]


def simulate_detections(
    gt: COCO | dict[str, Any] | str | os.PathLike,
    *,
    seed: int = 0,
    with_masks: bool = False,
    keep: float = 0.85,
    jitter: float = 0.08,
    false_positives: float = 1.5,
    wrong_class: float = 0.05,
) -> list[dict[str, Any]]:
    """COCO result dicts derived from ``gt``.

    Args:
        gt: the ground truth (object, dict or file).
        seed: seed of the numpy generator; the same seed gives the same results.
        with_masks: add an RLE ``segmentation`` to every result (needs ground-truth masks).
        keep: chance that a ground-truth instance is detected at all.
        jitter: box noise, as a fraction of the box size.
        false_positives: mean number of spurious detections per image.
        wrong_class: chance that a detection carries a wrong category id.

    Returns:
        Results with ``image_id``, ``category_id``, ``bbox``, ``score`` (and ``segmentation``).
    """
    coco = load_coco_gt(gt)
    rng = np.random.default_rng(seed)
    cat_ids = sorted(coco.getCatIds())
    results = []
    for image_id in sorted(coco.getImgIds()):
        image = coco.imgs[image_id]
        for ann in coco.imgToAnns[image_id]:
            if ann.get("iscrowd", 0) or rng.random() >= keep:
                continue
            category = ann["category_id"]
            if len(cat_ids) > 1 and rng.random() < wrong_class:
                category = int(rng.choice([c for c in cat_ids if c != category]))
            result = {
                "image_id": image_id, "category_id": category,
                "bbox": _jitter_box(ann["bbox"], jitter, rng), "score": float(rng.uniform(0.05, 1)),
            }
            if with_masks:
                result["segmentation"] = _encode(_ragged_mask(_decode(coco, ann), rng))
            results.append(result)
        results += _false_positives(image, cat_ids, false_positives, with_masks, rng)
    return results


def _decode(coco: COCO, ann: dict[str, Any]) -> np.ndarray:
    with warnings.catch_warnings():  # pycocotools' decode trips a numpy 2 deprecation
        warnings.filterwarnings("ignore", "__array__ implementation", DeprecationWarning)
        return coco.annToMask(ann)


def _jitter_box(bbox: list[float], jitter: float, rng: np.random.Generator) -> list[float]:
    x, y, w, h = bbox
    dx, dy, sw, sh = rng.normal(0.0, jitter, size=4)
    width, height = max(1.0, w * float(np.exp(sw))), max(1.0, h * float(np.exp(sh)))
    return [float(x + dx * w), float(y + dy * h), width, height]


def _ragged_mask(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Shift a mask by a few pixels and flip a sprinkle of pixels inside its box."""
    dy, dx = rng.integers(-4, 5, size=2)
    shifted = np.zeros_like(mask)
    h, w = mask.shape
    shifted[max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = (
        mask[max(-dy, 0):h + min(-dy, 0), max(-dx, 0):w + min(-dx, 0)]
    )
    ys, xs = np.nonzero(mask)
    if ys.size:
        box = (slice(ys.min(), ys.max() + 1), slice(xs.min(), xs.max() + 1))
        flips = rng.random(shifted[box].shape) < 0.03
        shifted[box] ^= flips.astype(shifted.dtype)
    return shifted


def _false_positives(
    image: dict[str, Any], cat_ids: list[int], rate: float, with_masks: bool,
    rng: np.random.Generator,
) -> list[dict[str, Any]]:
    height, width = image["height"], image["width"]
    results = []
    for _ in range(rng.poisson(rate)):
        w, h = rng.uniform(0.05, 0.5) * width, rng.uniform(0.05, 0.5) * height
        x, y = rng.uniform(0, width - w), rng.uniform(0, height - h)
        result = {
            "image_id": image["id"], "category_id": int(rng.choice(cat_ids)),
            "bbox": [float(x), float(y), float(w), float(h)], "score": float(rng.uniform(0, 0.6)),
        }
        if with_masks:
            mask = np.zeros((height, width), dtype=np.uint8)
            mask[int(y):int(y + h), int(x):int(x + w)] = 1
            result["segmentation"] = _encode(mask)
        results.append(result)
    return results


def _encode(mask: np.ndarray) -> dict[str, Any]:
    rle = mask_util.encode(np.asfortranarray(mask.astype(np.uint8)))
    rle["counts"] = rle["counts"].decode("ascii")
    return rle
