"""YOLO text labels to COCO JSON and back.

A YOLO label file ``<image stem>.txt`` has one object per line: ``class cx cy w h``, the class a
0-based index into the class names file and the box normalized by the image size. Lines with
more (an odd count of) numbers are YOLO segment polygons ``class x1 y1 x2 y2 ...``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from detbox.data.coco_validation import check_coco_dict, read_coco_json
from detbox.data.records import read_image_size
from detbox.dataset_converters.common import (
    categories_of,
    list_images,
    read_class_names,
    write_coco_json,
)
from detbox.errors import DatasetError
from detbox.utils.io import atomic_write_text

__all__ = ["coco_to_yolo", "yolo_to_coco"]


def yolo_to_coco(
    img_dir: str | os.PathLike,
    label_dir: str | os.PathLike,
    names_file: str | os.PathLike,
    out: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """Convert YOLO labels to a COCO dict (written to ``out`` when given).

    Every image below ``img_dir`` becomes a COCO image (``file_name`` relative to ``img_dir``);
    its labels are ``label_dir/<same relative path>.txt`` (an image without one has no
    objects). Category ids are ``class index + 1``.

    Args:
        img_dir: image folder (searched recursively).
        label_dir: label folder, mirroring ``img_dir``.
        names_file: class names, one per line, or a YOLO ``data.yaml`` with ``names``.
        out: the COCO JSON file to write.
    """
    class_names = read_class_names(names_file)
    images, annotations = [], []
    for image_id, rel in enumerate(list_images(img_dir), start=1):
        width, height = read_image_size(Path(img_dir) / rel)
        images.append({"id": image_id, "file_name": rel.as_posix(), "width": width,
                       "height": height})
        label_file = Path(label_dir) / rel.with_suffix(".txt")
        if not label_file.is_file():
            continue
        for line_no, line in enumerate(label_file.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            ann = _parse_line(line, f"{label_file}:{line_no}", len(class_names), width, height)
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, **ann})
    data = {"images": images, "annotations": annotations,
            "categories": categories_of(class_names)}
    if out is not None:
        write_coco_json(data, out)
    return data


def _parse_line(line: str, where: str, num_classes: int, width: int, height: int) -> dict:
    fields = line.split()
    try:
        cls, values = int(fields[0]), np.asarray([float(v) for v in fields[1:]])
    except ValueError:
        raise DatasetError(f"{where}: expected 'class cx cy w h' numbers, got '{line}'") from None
    if not 0 <= cls < num_classes:
        raise DatasetError(f"{where}: class {cls} is not in 0..{num_classes - 1} "
                           f"({num_classes} names in the names file)")
    scale = np.array([width, height], dtype=np.float64)
    if len(values) == 4:
        centre, size = values[:2] * scale, values[2:] * scale
        x1, y1 = centre - size / 2
        box, polygon = [float(x1), float(y1), float(size[0]), float(size[1])], None
    elif len(values) >= 6 and len(values) % 2 == 0:
        points = values.reshape(-1, 2) * scale
        (x1, y1), (x2, y2) = points.min(axis=0), points.max(axis=0)
        box, polygon = [float(x1), float(y1), float(x2 - x1), float(y2 - y1)], points
    else:
        raise DatasetError(f"{where}: {len(fields)} fields; expected 'class cx cy w h' or a "
                           "segment 'class x1 y1 x2 y2 x3 y3 ...' (detection outputs with a "
                           "score column are not labels)")
    if box[2] <= 0 or box[3] <= 0:
        raise DatasetError(f"{where}: the object has zero or negative width or height")
    ann = {"category_id": cls + 1, "bbox": box, "area": box[2] * box[3], "iscrowd": 0}
    if polygon is not None:
        ann["segmentation"] = [[float(v) for v in polygon.reshape(-1)]]
    return ann


def coco_to_yolo(
    ann_file: str | os.PathLike,
    out_dir: str | os.PathLike,
    names_file: str = "classes.txt",
) -> dict[str, int]:
    """Write YOLO labels (boxes) for every image of a COCO file.

    ``out_dir/<file_name with .txt>`` per image (empty for an image without objects, which
    YOLO reads as background) and ``out_dir/<names_file>``. Class index = position of the
    category in ascending id order. Boxes are clipped to the image (YOLO rejects coordinates
    outside 0..1); crowd annotations are left out (YOLO has no ignore regions). Each file is
    written atomically.

    Returns:
        ``{"images": ..., "annotations": ..., "categories": ...}`` counts written.
    """
    data = read_coco_json(str(ann_file))
    check_coco_dict(data, str(ann_file), test_mode=False)
    categories = sorted(data["categories"], key=lambda c: c["id"])
    index_of = {c["id"]: i for i, c in enumerate(categories)}
    lines: dict[int, list[str]] = {im["id"]: [] for im in data["images"]}
    sizes = {im["id"]: (im["width"], im["height"]) for im in data["images"]}
    written = 0
    for ann in data["annotations"]:
        if ann.get("iscrowd", 0):
            continue
        width, height = sizes[ann["image_id"]]
        x, y, w, h = ann["bbox"]
        x1, y1 = min(max(x, 0.0), width), min(max(y, 0.0), height)
        x2, y2 = min(max(x + w, 0.0), width), min(max(y + h, 0.0), height)
        if x2 <= x1 or y2 <= y1:
            continue
        values = ((x1 + x2) / 2 / width, (y1 + y2) / 2 / height,
                  (x2 - x1) / width, (y2 - y1) / height)
        lines[ann["image_id"]].append(
            f"{index_of[ann['category_id']]} " + " ".join(f"{v:.6f}" for v in values))
        written += 1
    out = Path(out_dir)
    for image in data["images"]:
        rel = Path(image["file_name"])
        if rel.is_absolute() or ".." in rel.parts:
            rel = Path(rel.name)
        text = "".join(f"{line}\n" for line in lines[image["id"]])
        atomic_write_text(out / rel.with_suffix(".txt"), text)
    atomic_write_text(out / names_file, "".join(f"{c['name']}\n" for c in categories))
    return {"images": len(data["images"]), "annotations": written,
            "categories": len(categories)}
