"""A tiny Cityscapes folder in the official layout: 2 cities, 3 images of 64x32 pixels.

Objects are rectangles ``(label_id, instance or None, x1, y1, x2, y2)`` painted into the
``instanceIds`` PNG (``label_id * 1000 + instance``, the bare ``label_id`` for a crowd region);
the rest is road (7) and sky (23). Every object covers at least 100 pixels, the smallest region
the official evaluation counts.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

WIDTH, HEIGHT = 64, 32
NAMES = {24: "person", 25: "rider", 26: "car", 33: "bicycle"}

# image stem -> objects
OBJECTS = {
    "aachen/aachen_000000_000019": [(26, 0, 2, 2, 20, 14), (24, 1, 30, 4, 42, 20),
                                    (24, None, 50, 18, 62, 30)],
    "aachen/aachen_000001_000019": [(33, 0, 5, 10, 25, 28), (25, 0, 40, 5, 56, 25)],
    "bremen/bremen_000000_000019": [],  # only road and sky: no instance
}


def instance_ids(objects: list[tuple]) -> np.ndarray:
    """The (HEIGHT, WIDTH) int32 instance-id map of ``objects``."""
    ids = np.full((HEIGHT, WIDTH), 7, dtype=np.int32)
    ids[:8] = 23
    for label, instance, x1, y1, x2, y2 in objects:
        ids[y1:y2, x1:x2] = label if instance is None else label * 1000 + instance
    return ids


def write_cityscapes(root: Path, split: str = "val") -> Path:
    """Write the three images and their ``gtFine`` files under ``root``; returns ``root``."""
    for stem, objects in OBJECTS.items():
        image = root / "leftImg8bit" / split / f"{stem}_leftImg8bit.png"
        gt = root / "gtFine" / split / stem
        image.parent.mkdir(parents=True, exist_ok=True)
        gt.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (WIDTH, HEIGHT), (90, 90, 90)).save(image)
        Image.fromarray(instance_ids(objects).astype(np.uint16)).save(f"{gt}_gtFine_instanceIds.png")
        polygons = [{"label": NAMES[label] + ("group" if inst is None else ""),
                     "polygon": [[x1, y1], [x2, y1], [x2, y2], [x1, y2]]}
                    for label, inst, x1, y1, x2, y2 in objects]
        Path(f"{gt}_gtFine_polygons.json").write_text(json.dumps(
            {"imgHeight": HEIGHT, "imgWidth": WIDTH, "objects": polygons}))
    return root


def expected_objects() -> dict[str, list[tuple[str, list[float], int]]]:
    """``{file_name stem: sorted [(class, [x, y, w, h], iscrowd)]}`` the converter must give."""
    out = {}
    for stem, objects in OBJECTS.items():
        out[Path(stem).name + "_leftImg8bit"] = sorted(
            (NAMES[label], [float(x1), float(y1), float(x2 - x1), float(y2 - y1)],
             int(inst is None))
            for label, inst, x1, y1, x2, y2 in objects)
    return out
