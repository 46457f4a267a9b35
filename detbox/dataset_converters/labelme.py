"""LabelMe JSON files (one per image) to COCO JSON.

Polygons, rectangles and circles become objects with polygon masks; shapes that share a
``label`` and a ``group_id`` form one object (LabelMe's way to draw an object in pieces).
Points and lines are not objects and are skipped.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from pathlib import Path, PureWindowsPath
from typing import Any

import numpy as np
import pycocotools.mask as mask_utils

from detbox.data.records import read_image_size
from detbox.dataset_converters.common import categories_of, check_class_name, write_coco_json
from detbox.errors import DatasetError

__all__ = ["labelme_to_coco"]

_SKIPPED_SHAPES = ("point", "points", "line", "linestrip")
_CIRCLE_VERTICES = 32


def labelme_to_coco(
    json_dir: str | os.PathLike,
    out: str | os.PathLike | None = None,
    *,
    img_dir: str | os.PathLike | None = None,
    class_names: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Convert a folder of LabelMe ``*.json`` files to a COCO dict (written to ``out``).

    Args:
        json_dir: folder of LabelMe files.
        out: the COCO JSON file to write.
        img_dir: folder the COCO ``file_name`` entries are relative to; default ``json_dir``.
            Each image is the file's ``imagePath``, relative to the JSON file.
        class_names: category order (ids ``1..C``); other labels are errors. Default: every
            label found, sorted.
    """
    json_paths = sorted(Path(json_dir).glob("*.json"))
    if not json_paths:
        raise DatasetError(f"{json_dir}: no LabelMe .json files found")
    img_root = Path(img_dir if img_dir is not None else json_dir)
    files = [(path, _read_labelme(path)) for path in json_paths]
    if class_names is None:
        class_names = sorted({str(s.get("label")) for _, d in files for s in d["shapes"]
                              if s.get("shape_type", "polygon") not in _SKIPPED_SHAPES})
    images, annotations = [], []
    for image_id, (path, data) in enumerate(files, start=1):
        image = _image_entry(path, data, img_root, image_id)
        images.append(image)
        for label, polygons in _objects(path, data):
            category = check_class_name(label, class_names, str(path)) + 1
            annotations.append(_annotation(len(annotations) + 1, image, category, polygons))
    data = {"images": images, "annotations": annotations,
            "categories": categories_of(class_names)}
    if out is not None:
        write_coco_json(data, out)
    return data


def _read_labelme(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("shapes"), list) \
            or not data.get("imagePath"):
        raise DatasetError(f"{path}: not a LabelMe file (needs 'shapes' and 'imagePath')")
    return data


def _image_entry(path: Path, data: dict[str, Any], img_root: Path, image_id: int) -> dict:
    image_path = path.parent / PureWindowsPath(data["imagePath"]).as_posix()
    height, width = data.get("imageHeight"), data.get("imageWidth")
    if not height or not width:
        if not image_path.is_file():
            raise DatasetError(f"{path}: no imageHeight/imageWidth and the image {image_path} "
                               "is not there to read them from")
        width, height = read_image_size(image_path)
    file_name = Path(os.path.relpath(image_path.resolve(), img_root.resolve())).as_posix()
    return {"id": image_id, "file_name": file_name, "width": int(width), "height": int(height)}


def _objects(path: Path, data: dict[str, Any]) -> list[tuple[str, list[list[float]]]]:
    """``(label, polygons)`` per object; grouped shapes are one object."""
    groups: dict[Any, tuple[str, list[list[float]]]] = {}
    for index, shape in enumerate(data["shapes"]):
        kind = shape.get("shape_type") or "polygon"
        if kind in _SKIPPED_SHAPES:
            continue
        label = str(shape.get("label"))
        polygon = _polygon(kind, shape.get("points") or [], f"{path}: shape #{index} ('{label}')")
        group = shape.get("group_id")
        key = (label, group) if group is not None else ("#", index)
        groups.setdefault(key, (label, []))[1].append(polygon)
    return list(groups.values())


def _polygon(kind: str, points: list, where: str) -> list[float]:
    try:
        pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    except (TypeError, ValueError):
        raise DatasetError(f"{where}: points must be [[x, y], ...] numbers") from None
    if kind == "rectangle" and len(pts) == 2:
        (x1, y1), (x2, y2) = pts.min(axis=0), pts.max(axis=0)
        pts = np.array([[x1, y1], [x2, y1], [x2, y2], [x1, y2]])
    elif kind == "circle" and len(pts) == 2:
        radius = float(np.hypot(*(pts[1] - pts[0])))
        angles = [2 * math.pi * k / _CIRCLE_VERTICES for k in range(_CIRCLE_VERTICES)]
        pts = np.array([[pts[0][0] + radius * math.cos(a), pts[0][1] + radius * math.sin(a)]
                        for a in angles])
    elif kind not in ("polygon", "rectangle", "circle"):
        raise DatasetError(f"{where}: shape type '{kind}' is not supported (polygon, "
                           "rectangle, circle; points and lines are skipped)")
    if len(pts) < 3:
        raise DatasetError(f"{where}: a {kind} needs more points than {len(pts)}; fix it")
    if (np.ptp(pts, axis=0) <= 0).any():
        raise DatasetError(f"{where}: the {kind} has zero width or height; fix or remove it")
    return [float(v) for v in pts.reshape(-1)]


def _annotation(ann_id: int, image: dict, category_id: int, polygons: list) -> dict[str, Any]:
    coords = np.concatenate([np.reshape(p, (-1, 2)) for p in polygons])
    (x1, y1), (x2, y2) = coords.min(axis=0), coords.max(axis=0)
    rle = mask_utils.merge(mask_utils.frPyObjects(polygons, image["height"], image["width"]))
    return {"id": ann_id, "image_id": image["id"], "category_id": category_id,
            "segmentation": polygons, "area": float(mask_utils.area(rle)),
            "bbox": [float(x1), float(y1), float(x2 - x1), float(y2 - y1)], "iscrowd": 0}
