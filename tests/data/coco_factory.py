"""Builders of tiny COCO annotation files for the data tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image


def write_coco(
    root: Path,
    images: list[dict[str, Any]],
    annotations: list[dict[str, Any]] | None,
    categories: list[dict[str, Any]],
    write_images: bool = True,
    **extra: Any,
) -> tuple[Path, Path]:
    """Write ``root/ann.json`` and random PNGs ``root/images/<file_name>``; returns both paths."""
    img_dir = root / "images"
    img_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    if write_images:
        for image in images:
            pixels = rng.integers(0, 256, (image["height"], image["width"], 3), dtype=np.uint8)
            Image.fromarray(pixels).save(img_dir / image["file_name"])
    data: dict[str, Any] = {"images": images, "categories": categories, **extra}
    if annotations is not None:
        data["annotations"] = annotations
    ann_file = root / "ann.json"
    ann_file.write_text(json.dumps(data))
    return ann_file, img_dir


def image_entry(image_id: int, width: int = 40, height: int = 30) -> dict[str, Any]:
    return {"id": image_id, "file_name": f"img{image_id}.png", "width": width, "height": height}


def box_annotation(ann_id: int, image_id: int, category_id: int, bbox: list[float],
                   **extra: Any) -> dict[str, Any]:
    return {"id": ann_id, "image_id": image_id, "category_id": category_id, "bbox": bbox,
            "area": bbox[2] * bbox[3], "iscrowd": 0, **extra}


CATEGORIES = [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}]
