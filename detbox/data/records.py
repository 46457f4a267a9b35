"""Datasets held as middle-format records in memory, and their COCO view.

``CustomDataset`` reads the records from a file, ``VOCDataset`` parses them from XML; both then
behave like ``CocoDataset``: contiguous labels, ``cat_ids``, ``aspect_ratios``, ``get_record``
and a pycocotools ``coco`` index built in memory, so the COCO metrics work on their data too.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pycocotools.mask as mask_utils
from PIL import Image
from pycocotools.coco import COCO
from torch import Tensor
from torch.utils.data import Dataset

from detbox.data.coco import PipelineConfig, default_pipeline, make_coco
from detbox.data.coco_validation import check_image_files
from detbox.data.skipping import SkippedImages, load_skipping_unreadable
from detbox.data.transforms import Compose
from detbox.errors import DatasetError
from detbox.registry import closest_match
from detbox.structures import DetSample
from detbox.utils.io import atomic_write_text

__all__ = [
    "RecordDataset",
    "make_coco",
    "read_image_size",
    "records_to_coco",
    "select_class_names",
    "write_label_map",
]

_EXIF_ORIENTATION = 0x0112
_TRANSPOSED_ORIENTATIONS = (5, 6, 7, 8)  # EXIF orientations that swap width and height


class RecordDataset(Dataset):
    """Images described by middle-format records (see ``detbox.data.custom``).

    Args:
        records: one checked record per image, with numpy ``ann`` arrays; labels index
            ``all_class_names``. Image ``i`` gets image id ``i + 1``.
        all_class_names: every class the records' labels refer to.
        img_dir: folder that the records' ``filename`` entries are relative to.
        pipeline: transform configs; default: ``default_pipeline(test_mode, with_mask)``.
        class_names: a subset of ``all_class_names`` to keep, label ``i`` being
            ``class_names[i]``; None keeps all. Category ids are positions in
            ``all_class_names`` plus one, so they do not change when a subset is selected.
        filter_empty: drop images without an object of a kept class (training only).
        test_mode: no image is filtered.
        ann_file: where the records came from (for messages and ``ann_file``).
        label_map_out: write ``label_map.json`` here (a folder or a ``.json`` path).
    """

    def __init__(
        self,
        records: list[dict[str, Any]],
        all_class_names: Sequence[str],
        img_dir: str | os.PathLike,
        pipeline: PipelineConfig | None = None,
        *,
        class_names: Sequence[str] | None = None,
        filter_empty: bool = False,
        test_mode: bool = False,
        ann_file: str | os.PathLike = "",
        label_map_out: str | os.PathLike | None = None,
        max_skipped_images: int = 10,
    ) -> None:
        self.ann_file = str(ann_file)
        self.img_dir = str(img_dir)
        self.test_mode = test_mode
        self.max_skipped_images = 0 if test_mode else max(0, int(max_skipped_images))
        self._skipped = SkippedImages(self.max_skipped_images, self.ann_file)
        self.class_names = select_class_names(all_class_names, class_names, self.ann_file)
        position = {name: i for i, name in enumerate(all_class_names)}
        self.cat_ids = [position[name] + 1 for name in self.class_names]
        self._all_class_names = [str(n) for n in all_class_names]
        self._new_label = np.full(len(all_class_names), -1, dtype=np.int64)
        self._new_label[[c - 1 for c in self.cat_ids]] = np.arange(len(self.cat_ids))
        self._records = records
        kept = range(len(records))
        if filter_empty and not test_mode:
            kept = [i for i in kept if (self._new_label[records[i]["ann"]["labels"]] >= 0).any()]
        self._indices = list(kept)
        self.image_ids = [i + 1 for i in self._indices]
        check_image_files([self._img_path(i) for i in self._indices], self.ann_file)
        with_mask = any(r["ann"].get("masks") is not None for r in records)
        self.pipeline = Compose(
            default_pipeline(test_mode, with_mask) if pipeline is None else pipeline
        )
        self._coco: COCO | None = None
        if label_map_out is not None:
            self.write_label_map(label_map_out)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def aspect_ratios(self) -> list[float]:
        """Width / height of every image, for grouping batches by orientation."""
        return [self._records[i]["width"] / self._records[i]["height"] for i in self._indices]

    @property
    def coco(self) -> COCO:
        """The kept images and classes as a pycocotools index (built on first use)."""
        if self._coco is None:
            records = [self._records[i] for i in self._indices]
            data = records_to_coco(records, self._all_class_names, image_ids=self.image_ids,
                                   keep_cat_ids=self.cat_ids)
            self._coco = make_coco(data)
        return self._coco

    def __len__(self) -> int:
        return len(self._indices)

    def __getitem__(self, index: int) -> tuple[Tensor, DetSample]:
        if self.max_skipped_images == 0:
            return self.pipeline(self.get_record(index))
        return load_skipping_unreadable(
            lambda i: self.pipeline(self.get_record(i)), index, len(self), self._skipped,
            path_of=lambda i: self._img_path(self._indices[i]),
        )

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({self.ann_file!r}, {len(self)} images, "
                f"{self.num_classes} classes, test_mode={self.test_mode})")

    def _img_path(self, record_index: int) -> str:
        return os.path.join(self.img_dir, self._records[record_index]["filename"])

    def get_record(self, index: int) -> dict[str, Any]:
        """The pipeline's input for image ``index``, in ``CocoDataset.get_record``'s layout.

        ``ann`` holds ``boxes`` (N, 4) float32 xyxy, ``labels`` (N,) int64 (contiguous over
        the kept classes), ``ignored_boxes`` (M, 4) float32, ``segmentations`` (one mask or
        None per box) and ``ann_ids`` (the box's position in its record).
        """
        record_index = self._indices[index]
        record = self._records[record_index]
        ann = record["ann"]
        labels = self._new_label[ann["labels"]]
        keep = np.flatnonzero(labels >= 0)
        ignored = ann["bboxes_ignore"]
        if ann.get("labels_ignore") is not None:
            ignored = ignored[self._new_label[ann["labels_ignore"]] >= 0]
        masks = ann.get("masks")
        return {
            "img_path": self._img_path(record_index),
            "image_id": record_index + 1,
            "file_name": record["filename"],
            "height": record["height"],
            "width": record["width"],
            "ann_file": self.ann_file,
            "ann": {
                "boxes": ann["bboxes"][keep],
                "labels": labels[keep],
                "ignored_boxes": ignored.reshape(-1, 4),
                "segmentations": [masks[j] if masks is not None else None for j in keep],
                "ann_ids": [int(j) for j in keep],
            },
        }

    def write_label_map(self, path: str | os.PathLike) -> Path:
        """Write ``label_map.json`` (into ``path`` if it is a folder); returns the file."""
        return write_label_map(path, self.class_names, self.cat_ids)


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


def write_label_map(
    path: str | os.PathLike, class_names: Sequence[str], cat_ids: Sequence[int]
) -> Path:
    """Write ``{"classes": [{"label", "category_id", "name"}, ...]}`` atomically.

    ``path`` is the file, or a folder to write ``label_map.json`` into. Returns the file.
    """
    path = Path(path)
    if path.suffix.lower() != ".json":
        path = path / "label_map.json"
    classes = [{"label": i, "category_id": int(c), "name": str(n)}
               for i, (n, c) in enumerate(zip(class_names, cat_ids, strict=True))]
    atomic_write_text(path, json.dumps({"classes": classes}, indent=2) + "\n")
    return path


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
