"""Folders of instance-mask PNGs to COCO JSON with RLE masks.

Each mask file belongs to one image and holds one integer per pixel: 0 for background and a
distinct value for every object (``PennFudanPed/PedMasks/FudanPed00001_mask.png`` style).
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pycocotools.mask as mask_utils
from PIL import Image

from detbox.data.records import read_image_size
from detbox.dataset_converters.common import categories_of, find_image, write_coco_json
from detbox.errors import ConfigError, DatasetError

__all__ = ["masks_to_coco", "instance_annotations"]


def masks_to_coco(
    mask_dir: str | os.PathLike,
    img_dir: str | os.PathLike,
    out: str | os.PathLike | None = None,
    *,
    class_name: str | None = None,
    category_patterns: Sequence[tuple[str, str]] = (),
    mask_suffix: str = "_mask",
) -> dict[str, Any]:
    """Convert instance-mask PNGs to a COCO dict (written to ``out`` when given).

    The image of ``<stem><mask_suffix>.png`` is ``img_dir/<stem>.<jpg|png|...>``. Every
    nonzero pixel value of a mask is one object: its mask (RLE), tight box and pixel area.

    Args:
        mask_dir: folder of ``*<mask_suffix>.png`` files.
        img_dir: folder of the images; ``file_name`` entries are relative to it.
        out: the COCO JSON file to write.
        class_name: the class of every object.
        category_patterns: ``(glob, class)`` pairs matched against the mask file name, first
            match wins (e.g. ``("cat_*", "cat")``); categories are numbered in this order.
        mask_suffix: what follows the image stem in a mask file name (may be empty).

    Raises:
        ConfigError: neither or both of ``class_name`` and ``category_patterns``.
        DatasetError: naming the mask file: no image, no matching pattern, a multi-channel
            PNG, or a size that differs from its image's.
    """
    if (class_name is None) == (not category_patterns):
        raise ConfigError("masks2coco needs either one class name or category patterns")
    names = [class_name] if class_name is not None else \
        list(dict.fromkeys(name for _, name in category_patterns))
    mask_paths = sorted(Path(mask_dir).glob(f"*{mask_suffix}.png"))
    if not mask_paths:
        raise DatasetError(f"{mask_dir}: no '*{mask_suffix}.png' mask files found")
    images, annotations = [], []
    for image_id, mask_path in enumerate(mask_paths, start=1):
        stem = mask_path.name[: len(mask_path.name) - len(f"{mask_suffix}.png")]
        image_path = find_image(img_dir, stem)
        if image_path is None:
            raise DatasetError(f"{mask_path}: no image named '{stem}.*' in {img_dir}")
        label = _category(mask_path, class_name, category_patterns, names)
        width, height = read_image_size(image_path)
        images.append({"id": image_id, "file_name": image_path.name,
                       "width": width, "height": height})
        mask = _read_mask(mask_path, (height, width))
        for ann in instance_annotations(mask, image_id, label + 1):
            annotations.append({"id": len(annotations) + 1, **ann})
    data = {"images": images, "annotations": annotations, "categories": categories_of(names)}
    if out is not None:
        write_coco_json(data, out)
    return data


def _category(
    path: Path, class_name: str | None, patterns: Sequence[tuple[str, str]], names: list[str]
) -> int:
    if class_name is not None:
        return 0
    for pattern, name in patterns:
        if fnmatch.fnmatch(path.name, pattern):
            return names.index(name)
    raise DatasetError(f"{path}: matches none of the category patterns "
                       f"{[p for p, _ in patterns]}; add a pattern for it")


def _read_mask(path: Path, size: tuple[int, int]) -> np.ndarray:
    try:
        with Image.open(path) as image:
            if image.mode not in ("1", "L", "P", "I", "I;16"):
                raise DatasetError(f"{path}: a {image.mode} image; instance masks must have one "
                                   "channel (pixel value = instance id, 0 = background)")
            mask = np.asarray(image)
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read mask ({exc})") from None
    if mask.shape != size:
        raise DatasetError(f"{path}: mask is {mask.shape[1]}x{mask.shape[0]} but its image is "
                           f"{size[1]}x{size[0]}")
    return mask


def instance_annotations(
    mask: np.ndarray, image_id: int, category_id: int, values: Sequence[int] | None = None
) -> list[dict]:
    """One COCO annotation (RLE ``segmentation``, ``bbox``, ``area``) per nonzero value.

    ``values``: only these values (in this order), when the caller already knows them.
    """
    annotations = []
    fortran = np.asfortranarray(mask)  # one copy; the masks compared from it stay in that order
    for value in np.unique(mask) if values is None else values:
        if value == 0:
            continue
        rle = mask_utils.encode((fortran == value).astype(np.uint8, order="F"))
        annotations.append({
            "image_id": image_id, "category_id": category_id,
            "segmentation": {"size": [int(s) for s in rle["size"]],
                             "counts": rle["counts"].decode("ascii")},
            "area": float(mask_utils.area(rle)),
            "bbox": [float(v) for v in mask_utils.toBbox(rle)],
            "iscrowd": 0,
        })
    return annotations
