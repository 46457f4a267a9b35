"""Middle-format records held in memory, and their COCO view.

``CustomDataset`` reads the records from a file, ``VOCDataset`` parses them from XML; both hand
them to ``RecordAnnotations``, so they behave like ``CocoDataset``: contiguous labels,
``cat_ids``, and a pycocotools ``coco`` index built in memory, so the COCO metrics work on their
data too.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pycocotools.mask as mask_utils
from PIL import Image
from pycocotools.coco import COCO

from detbox.data.base import write_label_map
from detbox.data.coco import make_coco
from detbox.errors import DatasetError
from detbox.registry import closest_match

__all__ = [
    "RecordAnnotations",
    "make_coco",
    "read_image_size",
    "records_to_coco",
    "select_class_names",
    "write_label_map",
]

_EXIF_ORIENTATION = 0x0112
_TRANSPOSED_ORIENTATIONS = (5, 6, 7, 8)  # EXIF orientations that swap width and height


class RecordAnnotations:
    """Middle-format records held in memory (see ``detbox.data.custom``), a subset of classes kept.

    Image ``i`` of ``records`` gets image id ``i + 1``. Category ids are positions in
    ``all_class_names`` plus one, so they do not change when a subset is selected.

    Args:
        records: one checked record per image, with numpy ``ann`` arrays; labels index
            ``all_class_names``.
        all_class_names: every class the records' labels refer to.
        class_names: a subset of ``all_class_names`` to keep, label ``i`` being
            ``class_names[i]``; None keeps all.
        source: where the records came from, for messages.
    """

    def __init__(
        self,
        *,
        records: list[dict[str, Any]],
        all_class_names: Sequence[str],
        class_names: Sequence[str] | None = None,
        source: str = "",
    ) -> None:
        self.class_names = select_class_names(all_class_names, class_names, source)
        position = {name: i for i, name in enumerate(all_class_names)}
        self.cat_ids = [position[name] + 1 for name in self.class_names]
        self._all_class_names = [str(n) for n in all_class_names]
        self._new_label = np.full(len(all_class_names), -1, dtype=np.int64)
        self._new_label[[c - 1 for c in self.cat_ids]] = np.arange(len(self.cat_ids))
        self._records = records
        self.image_ids = list(range(1, len(records) + 1))
        self.has_masks = any(r["ann"].get("masks") is not None for r in records)

    def image_info(self, image_id: int) -> dict[str, Any]:
        record = self._records[image_id - 1]
        return {"file_name": record["filename"], "width": record["width"],
                "height": record["height"]}

    def has_objects(self, image_id: int) -> bool:
        return bool((self._new_label[self._records[image_id - 1]["ann"]["labels"]] >= 0).any())

    def instances(self, image_id: int) -> dict[str, Any]:
        """Boxes and labels of the kept classes (labels contiguous over them).

        ``segmentations`` hold one mask or None per box, ``ann_ids`` the box's position in its
        record; ignored boxes of dropped classes are left out.
        """
        ann = self._records[image_id - 1]["ann"]
        labels = self._new_label[ann["labels"]]
        keep = np.flatnonzero(labels >= 0)
        ignored = ann["bboxes_ignore"]
        if ann.get("labels_ignore") is not None:
            ignored = ignored[self._new_label[ann["labels_ignore"]] >= 0]
        masks = ann.get("masks")
        return {
            "boxes": ann["bboxes"][keep],
            "labels": labels[keep],
            "ignored_boxes": ignored.reshape(-1, 4),
            "segmentations": [masks[j] if masks is not None else None for j in keep],
            "ann_ids": [int(j) for j in keep],
        }

    def to_coco(self, image_ids: Sequence[int]) -> COCO:
        """The images ``image_ids`` and the kept classes, built from the records."""
        records = [self._records[i - 1] for i in image_ids]
        data = records_to_coco(records, self._all_class_names, image_ids=image_ids,
                               keep_cat_ids=self.cat_ids)
        return make_coco(data)


def select_class_names(
    all_names: Sequence[str], class_names: Sequence[str] | None, source: str
) -> list[str]:
    """``class_names`` checked against ``all_names`` (all of them when None).

    Raises:
        DatasetError: a repeated name, or one not among ``all_names`` (with the closest match).
    """
    if class_names is None:
        return [str(n) for n in all_names]
    if isinstance(class_names, str) or len(set(class_names)) != len(class_names):
        raise DatasetError(f"class_names must be a list of distinct names, got {class_names!r}")
    known = [str(n) for n in all_names]
    missing = [str(n) for n in class_names if n not in known]
    if missing:
        hints = [f"'{n}'" + (f" (closest: '{m}')" if (m := closest_match(n, known)) else "")
                 for n in missing]
        raise DatasetError(f"{source}: class_names {', '.join(hints)} not among its classes "
                           f"({', '.join(known)}); fix class_names")
    return [str(n) for n in class_names]


def records_to_coco(
    records: Sequence[Mapping[str, Any]],
    class_names: Sequence[str],
    *,
    image_ids: Sequence[int] | None = None,
    keep_cat_ids: Sequence[int] | None = None,
) -> dict[str, Any]:
    """A COCO dict of middle-format records; category id = label + 1.

    Boxes become ``[x, y, w, h]`` with ``area = w * h`` (the mask's area when there is a mask).
    Ignored boxes become ``iscrowd=1`` annotations of their class (of every kept class when
    the record has no ``labels_ignore``), so COCO evaluation ignores them as VOC does.

    Args:
        records: middle-format records with numpy or list ``ann`` entries.
        class_names: the classes the labels index.
        image_ids: one id per record; ``1..len(records)`` by default.
        keep_cat_ids: write only these categories (and their annotations).
    """
    cat_ids = list(keep_cat_ids) if keep_cat_ids is not None else \
        list(range(1, len(class_names) + 1))
    keep = set(cat_ids)
    ids = list(image_ids) if image_ids is not None else list(range(1, len(records) + 1))
    with_masks = any(r.get("ann", {}).get("masks") is not None for r in records)
    images, annotations = [], []
    for image_id, record in zip(ids, records, strict=True):
        images.append({"id": int(image_id), "file_name": record["filename"],
                       "width": int(record["width"]), "height": int(record["height"])})
        ann = record.get("ann") or {}
        masks = ann.get("masks")
        size = (int(record["height"]), int(record["width"]))
        for j, (box, label) in enumerate(zip(_rows(ann.get("bboxes")), _ints(ann.get("labels")))):
            if label + 1 not in keep:
                continue
            entry = _coco_box(box, label + 1, image_id, len(annotations) + 1, crowd=False)
            if masks is not None:
                entry["segmentation"] = _json_segmentation(masks[j], size)
                entry["area"] = float(mask_utils.area(_as_rle(entry["segmentation"], size)))
            annotations.append(entry)
        ignore_labels = ann.get("labels_ignore")
        for j, box in enumerate(_rows(ann.get("bboxes_ignore"))):
            crowd_cats = [int(ignore_labels[j]) + 1] if ignore_labels is not None else cat_ids
            for cat_id in (c for c in crowd_cats if c in keep):
                entry = _coco_box(box, cat_id, image_id, len(annotations) + 1, crowd=True)
                if with_masks:
                    x1, y1, x2, y2 = (float(v) for v in box)
                    entry["segmentation"] = [[x1, y1, x2, y1, x2, y2, x1, y2]]
                annotations.append(entry)
    categories = [{"id": c, "name": str(class_names[c - 1])} for c in cat_ids]
    return {"images": images, "annotations": annotations, "categories": categories}


def _rows(value: Any) -> list[list[float]]:
    return [] if value is None else np.asarray(value, dtype=np.float64).reshape(-1, 4).tolist()


def _ints(value: Any) -> list[int]:
    return [] if value is None else [int(v) for v in np.asarray(value).reshape(-1)]


def _coco_box(box: Sequence[float], cat_id: int, image_id: int, ann_id: int, crowd: bool) -> dict:
    x1, y1, x2, y2 = (float(v) for v in box)
    return {"id": ann_id, "image_id": int(image_id), "category_id": int(cat_id),
            "bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1),
            "iscrowd": int(crowd)}


def _json_segmentation(segm: Any, size: tuple[int, int]) -> Any:
    """Polygons as float lists; an RLE with its counts as a str (JSON has no bytes)."""
    if isinstance(segm, Mapping):
        counts = segm["counts"]
        return {"size": list(segm.get("size", size)),
                "counts": counts.decode("ascii") if isinstance(counts, bytes) else counts}
    return [[float(v) for v in polygon] for polygon in segm]


def _as_rle(segm: Any, size: tuple[int, int]) -> dict:
    if isinstance(segm, list):
        return mask_utils.merge(mask_utils.frPyObjects(segm, *size))
    if isinstance(segm["counts"], list):
        return mask_utils.frPyObjects(segm, *size)
    return {"size": segm["size"], "counts": segm["counts"].encode("ascii")}


def read_image_size(path: str | os.PathLike) -> tuple[int, int]:
    """``(width, height)`` of an image as ``LoadImage`` will see it (EXIF rotation applied).

    Only the header is read, not the pixels.

    Raises:
        DatasetError: the file is missing or not an image.
    """
    try:
        with Image.open(path) as image:
            width, height = image.size
            orientation = image.getexif().get(_EXIF_ORIENTATION)
    except FileNotFoundError:
        raise DatasetError(f"{path}: image file not found") from None
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read image ({exc})") from None
    if orientation in _TRANSPOSED_ORIENTATIONS:
        width, height = height, width
    return width, height
