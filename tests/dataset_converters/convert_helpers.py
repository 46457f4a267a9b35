"""Helpers for the converter tests: tiny COCO files and comparisons of COCO dicts."""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image


def write_images(img_dir: Path, sizes: dict[str, tuple[int, int]]) -> Path:
    """Plain images ``img_dir/<name>`` of ``(width, height)``."""
    for name, (width, height) in sizes.items():
        path = img_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (width, height), (120, 60, 200)).save(path)
    return img_dir


def boxes_by_image(coco: dict | Path) -> dict[str, list[tuple[str, list[float], int]]]:
    """``{file stem: sorted [(category name, [x, y, w, h], iscrowd)]}`` of a COCO dict or file."""
    data = json.loads(Path(coco).read_text()) if isinstance(coco, Path) else coco
    names = {c["id"]: c["name"] for c in data["categories"]}
    stems = {im["id"]: Path(im["file_name"]).stem for im in data["images"]}
    out: dict[str, list] = {stem: [] for stem in stems.values()}
    for ann in data["annotations"]:
        out[stems[ann["image_id"]]].append(
            (names[ann["category_id"]], [float(v) for v in ann["bbox"]], ann.get("iscrowd", 0)))
    return {stem: sorted(objs) for stem, objs in out.items()}
