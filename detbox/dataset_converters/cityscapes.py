"""Cityscapes ``gtFine`` instance annotations to COCO JSON: the 8 "thing" classes.

The official layout is read as it is unpacked::

    leftImg8bit/<split>/<city>/<city>_<seq>_<frame>_leftImg8bit.png
    gtFine/<split>/<city>/<city>_<seq>_<frame>_gtFine_instanceIds.png
    gtFine/<split>/<city>/<city>_<seq>_<frame>_gtFine_polygons.json

Masks come from the ``instanceIds`` PNG, whose pixel values are ``label_id * 1000 + instance``
for objects and the plain ``label_id`` (below 1000) for regions without instances: a group
of people, say, which becomes an ``iscrowd=1`` annotation (ignored by training and by COCO
evaluation). The polygon JSON only gives the image size, checked against the PNGs. Category
ids are the Cityscapes label ids (person 24, ..., bicycle 33), which the official evaluation
expects back. ``file_name`` entries are ``<city>/<name>_leftImg8bit.png``, relative to
``leftImg8bit/<split>``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from detbox.data.records import read_image_size
from detbox.data.skipping import UnreadableFiles
from detbox.dataset_converters.common import write_coco_json
from detbox.dataset_converters.masks import instance_annotations
from detbox.errors import DatasetError

__all__ = [
    "CITYSCAPES_THING_CLASSES",
    "CITYSCAPES_THING_IDS",
    "cityscapes_ann_name",
    "cityscapes_to_coco",
]

CITYSCAPES_THING_CLASSES = ("person", "rider", "car", "truck", "bus", "train", "motorcycle",
                            "bicycle")
CITYSCAPES_THING_IDS = (24, 25, 26, 27, 28, 31, 32, 33)  # label ids of the official labels.py

_IMAGE_SUFFIX = "_leftImg8bit.png"
_IDS_SUFFIX = "_gtFine_instanceIds.png"
_POLYGONS_SUFFIX = "_gtFine_polygons.json"


def cityscapes_ann_name(split: str) -> str:
    """The converted file of a split: ``instancesonly_filtered_gtFine_<split>.json``."""
    return f"instancesonly_filtered_gtFine_{split}.json"


def cityscapes_to_coco(
    root: str | os.PathLike,
    out: str | os.PathLike | None = None,
    *,
    split: str = "train",
    skip_empty: bool | None = None,
    skipped: UnreadableFiles | None = None,
) -> dict[str, Any]:
    """Convert one split of a Cityscapes folder to a COCO dict (written to ``out`` if given).

    Args:
        root: the folder holding ``leftImg8bit/`` and ``gtFine/``.
        out: the COCO JSON file to write.
        split: ``train``, ``val`` (or any folder name under both).
        skip_empty: leave out images without an object of the 8 classes (crowd regions do not
            count); default: for ``train`` only, as the classic converters do.
        skipped: collects images whose annotation files cannot be read (missing, corrupt,
            of another size than the image); each is logged and left out.

    Raises:
        DatasetError: the split has no images, or none of them could be converted.
    """
    img_root, gt_root = Path(root) / "leftImg8bit" / split, Path(root) / "gtFine" / split
    paths = sorted(img_root.glob(f"*/*{_IMAGE_SUFFIX}"))
    if not paths:
        raise DatasetError(f"{img_root}: no '<city>/*{_IMAGE_SUFFIX}' images; is {root} a "
                           "Cityscapes folder (leftImg8bit/, gtFine/)?")
    skip_empty = split == "train" if skip_empty is None else skip_empty
    skipped = UnreadableFiles("images") if skipped is None else skipped
    already_skipped = len(skipped)
    images, annotations = [], []
    for path in paths:
        stem = path.name[: -len(_IMAGE_SUFFIX)]
        image_id = len(images) + 1
        try:
            width, height, anns = _read_image(path, gt_root / path.parent.name / stem, image_id)
        except DatasetError as exc:
            skipped.add(str(path), "unreadable annotation", str(exc))
            continue
        if skip_empty and not any(a["iscrowd"] == 0 for a in anns):
            continue
        images.append({"id": image_id, "file_name": f"{path.parent.name}/{path.name}",
                       "width": width, "height": height})
        annotations += [{"id": len(annotations) + k + 1, **a} for k, a in enumerate(anns)]
    if len(skipped) - already_skipped == len(paths):
        first = skipped.details[already_skipped]
        raise DatasetError(f"{gt_root}: none of the {len(paths)} images of '{split}' has "
                           f"readable annotations; first problem: {first}")
    categories = [{"id": c, "name": n}
                  for c, n in zip(CITYSCAPES_THING_IDS, CITYSCAPES_THING_CLASSES, strict=True)]
    data = {"images": images, "annotations": annotations, "categories": categories}
    if out is not None:
        write_coco_json(data, out)
    return data


def _read_image(image: Path, gt_stem: Path, image_id: int) -> tuple[int, int, list[dict]]:
    """``(width, height, annotations)`` of one image from its ``gtFine`` files."""
    width, height = read_image_size(image)
    ids = _read_instance_ids(Path(f"{gt_stem}{_IDS_SUFFIX}"), (height, width))
    polygons = Path(f"{gt_stem}{_POLYGONS_SUFFIX}")
    if polygons.is_file():
        _check_polygons_size(polygons, (height, width))
    ids = np.asfortranarray(ids)  # the order pycocotools encodes masks in: one copy per image
    present = np.flatnonzero(np.bincount(ids.ravel(order="K")))
    anns = []
    for cat_id in CITYSCAPES_THING_IDS:
        objects = present[present // 1000 == cat_id]
        anns += instance_annotations(ids, image_id, cat_id, values=objects)
        if cat_id in present:
            crowd = instance_annotations(ids, image_id, cat_id, values=[cat_id])
            anns += [{**a, "iscrowd": 1} for a in crowd]
    return width, height, anns


def _read_instance_ids(path: Path, size: tuple[int, int]) -> np.ndarray:
    if not path.is_file():
        raise DatasetError(f"{path}: instance ids file not found")
    try:
        with Image.open(path) as image:
            ids = np.asarray(image).astype(np.int64)
    except (OSError, ValueError) as exc:
        raise DatasetError(f"{path}: cannot read instance ids PNG ({exc})") from None
    if ids.shape != size:
        raise DatasetError(f"{path}: instance ids are {ids.shape[-1]}x{ids.shape[0]} (of shape "
                           f"{ids.shape}) but the image is {size[1]}x{size[0]}")
    return ids


def _check_polygons_size(path: Path, size: tuple[int, int]) -> None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        json_size = (int(data["imgHeight"]), int(data["imgWidth"]))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DatasetError(f"{path}: not a Cityscapes polygon file ({type(exc).__name__}: "
                           f"{exc})") from None
    if json_size != size:
        raise DatasetError(f"{path}: says the image is {json_size[1]}x{json_size[0]}, but it "
                           f"is {size[1]}x{size[0]}")
