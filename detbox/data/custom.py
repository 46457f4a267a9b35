"""Datasets in detbox's middle format: one plain record per image, read from JSON or pickle.

The middle format is the simplest description of a detection dataset that a script can write::

    [{"filename": "a.jpg", "width": 640, "height": 480,
      "ann": {"bboxes": [[x1, y1, x2, y2], ...],    # (N, 4) absolute pixels
              "labels": [0, 2, ...],                # (N,) 0-based class indices
              "bboxes_ignore": [[x1, y1, x2, y2]],  # optional (M, 4): neither object nor background
              "labels_ignore": [1],                 # optional (M,): their classes
              "masks": [segmentation, ...]}},       # optional, polygons or a COCO RLE per box
     ...]

or ``{"classes": [...], "images": [...the list above...]}`` so the file carries its class names.
``RecordAnnotations`` holds such records in memory, for ``CustomDataset`` and ``VOCDataset``.
"""

from __future__ import annotations

import json
import os
import pickle
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from detbox.data.base import DetectionDataset, PipelineConfig
from detbox.data.records import RecordAnnotations
from detbox.errors import DatasetError
from detbox.registry import DATASETS

__all__ = ["CustomDataset", "load_middle_format"]


@DATASETS.register
class CustomDataset(DetectionDataset):
    """Images and boxes (optionally masks) listed in a middle-format ``.json`` or ``.pkl`` file.

    The classes are, in order of precedence: the file's ``"classes"`` list, the ``CLASSES``
    attribute of a subclass, or ``class_names``. When the file or the subclass names them,
    ``class_names`` selects a subset instead (label ``i`` becomes ``class_names[i]``, other
    classes are dropped), exactly as ``class_names`` does for ``CocoDataset``::

        @DATASETS.register
        class FruitDataset(CustomDataset):
            CLASSES = ("apple", "banana", "cherry")

    Args:
        ann_file: middle-format file, ``.json`` or ``.pkl`` (pickles run code when loaded:
            only read files you trust).
        img_dir: folder that ``filename`` entries are relative to.
        pipeline: transform configs; default: load, normalize and pack at the original size.
        class_names: the classes (when nothing else names them) or a subset of them.
        filter_empty: drop images without an object of a kept class (training only).
        test_mode: inference/evaluation use: records may lack ``ann``, no image is filtered.
        label_map_out: write ``label_map.json`` here (a folder or a ``.json`` path).
        max_skipped_images: as for ``CocoDataset``: unreadable training images are skipped
            with a warning, up to this many.
    """

    CLASSES: tuple[str, ...] | None = None

    def __init__(
        self,
        ann_file: str | os.PathLike,
        img_dir: str | os.PathLike,
        pipeline: PipelineConfig | None = None,
        *,
        class_names: Sequence[str] | None = None,
        filter_empty: bool = False,
        test_mode: bool = False,
        label_map_out: str | os.PathLike | None = None,
        max_skipped_images: int = 10,
    ) -> None:
        ann_file = str(ann_file)
        file_classes, raw_records = _read_middle_file(ann_file)
        declared = file_classes or (list(self.CLASSES) if self.CLASSES else None)
        if declared is None and class_names is None:
            raise DatasetError(
                f"{ann_file}: no class names: add a 'classes' list to the file, set CLASSES on "
                "the dataset class, or pass class_names"
            )
        all_names = [str(n) for n in (declared if declared is not None else class_names)]
        records = load_middle_format(raw_records, len(all_names), ann_file, test_mode)
        annotations = RecordAnnotations(
            records=records, all_class_names=all_names,
            class_names=class_names if declared is not None else None, source=ann_file,
        )
        super().__init__(
            annotations=annotations, ann_file=ann_file, img_dir=img_dir, pipeline=pipeline,
            with_mask=annotations.has_masks, filter_empty=filter_empty, test_mode=test_mode,
            max_skipped_images=max_skipped_images, label_map_out=label_map_out,
        )


def _read_middle_file(ann_file: str) -> tuple[list[str] | None, list[Any]]:
    """The file's ``classes`` (or None) and its list of raw records."""
    if not os.path.isfile(ann_file):
        raise DatasetError(f"{ann_file}: annotation file not found; check ann_file")
    try:
        if ann_file.endswith((".pkl", ".pickle")):
            with open(ann_file, "rb") as f:
                data = pickle.load(f)  # noqa: S301 - documented: a file the user trusts
        elif ann_file.endswith(".json"):
            with open(ann_file, encoding="utf-8") as f:
                data = json.load(f)
        else:
            raise DatasetError(f"{ann_file}: a middle-format file must end in .json or .pkl")
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{ann_file}: not valid JSON ({exc.msg} at line {exc.lineno}); "
                           "fix or regenerate the file") from None
    except (OSError, pickle.UnpicklingError, EOFError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{ann_file}: cannot read annotation file ({exc})") from None
    if isinstance(data, Mapping):
        if "images" not in data:
            raise DatasetError(f"{ann_file}: expected a list of image records or "
                               f"{{'classes': [...], 'images': [...]}}; got keys {sorted(data)}")
        classes = data.get("classes")
        if classes is not None and (isinstance(classes, str) or not isinstance(classes, list)):
            raise DatasetError(f"{ann_file}: 'classes' must be a list of names")
        data = data["images"]
    else:
        classes = None
    if not isinstance(data, list):
        raise DatasetError(f"{ann_file}: expected a list of image records, "
                           f"got a {type(data).__name__}")
    return classes, data


def load_middle_format(
    raw_records: Sequence[Any], num_classes: int, source: str, test_mode: bool = False
) -> list[dict[str, Any]]:
    """Check raw middle-format records and turn their ``ann`` lists into numpy arrays.

    Returns:
        Records ``{filename, width, height, ann: {bboxes (N, 4) float32, labels (N,) int64,
        bboxes_ignore (M, 4) float32, labels_ignore (M,) int64 or None, masks list or None}}``.

    Raises:
        DatasetError: naming ``source``, the record and what is wrong with it.
    """
    return [_check_record(r, i, num_classes, source, test_mode) for i, r in enumerate(raw_records)]


def _check_record(
    raw: Any, index: int, num_classes: int, source: str, test_mode: bool
) -> dict[str, Any]:
    if not isinstance(raw, Mapping):
        raise DatasetError(f"{source}: record #{index} is not a dict")
    for key in ("filename", "width", "height"):
        if key not in raw:
            raise DatasetError(f"{source}: record #{index} is missing required key '{key}' "
                               "(needed: filename, width, height, ann)")
    where = f"{source}: record #{index} ({raw['filename']})"
    width, height = raw["width"], raw["height"]
    if not all(isinstance(v, (int, np.integer)) and v > 0 for v in (width, height)):
        raise DatasetError(f"{where}: width and height must be positive integers, "
                           f"got {width!r} x {height!r}")
    ann = raw.get("ann")
    if ann is None and not test_mode:
        raise DatasetError(f"{where}: missing 'ann' (records without it need test_mode=True)")
    ann = ann or {}
    if not isinstance(ann, Mapping):
        raise DatasetError(f"{where}: 'ann' must be a dict with 'bboxes' and 'labels'")
    boxes = _boxes(ann.get("bboxes", []), f"{where} bboxes")
    labels = _labels(ann.get("labels", []), len(boxes), num_classes, f"{where} labels")
    ignored = _boxes(ann.get("bboxes_ignore", []), f"{where} bboxes_ignore")
    labels_ignore = ann.get("labels_ignore")
    if labels_ignore is not None:
        labels_ignore = _labels(labels_ignore, len(ignored), num_classes, f"{where} labels_ignore")
    masks = ann.get("masks")
    if masks is not None:
        masks = list(masks)
        if len(masks) != len(boxes):
            raise DatasetError(f"{where}: {len(masks)} masks for {len(boxes)} bboxes; "
                               "give one mask per box")
    return {"filename": str(raw["filename"]), "width": int(width), "height": int(height),
            "ann": {"bboxes": boxes, "labels": labels, "bboxes_ignore": ignored,
                    "labels_ignore": labels_ignore, "masks": masks}}


def _boxes(value: Any, where: str) -> np.ndarray:
    try:
        boxes = np.asarray(value, dtype=np.float32).reshape(-1, 4)
    except (TypeError, ValueError):
        raise DatasetError(f"{where}: expected an (N, 4) list of x1, y1, x2, y2 numbers") from None
    if np.size(value) != boxes.size or not np.isfinite(boxes).all():
        raise DatasetError(f"{where}: expected an (N, 4) list of finite x1, y1, x2, y2 numbers")
    bad = np.flatnonzero((boxes[:, 2] <= boxes[:, 0]) | (boxes[:, 3] <= boxes[:, 1]))
    if len(bad):
        raise DatasetError(f"{where}: box #{bad[0]} {boxes[bad[0]].tolist()} has x2 <= x1 or "
                           "y2 <= y1 (boxes are x1, y1, x2, y2, not x, y, w, h); fix or remove it")
    return boxes


def _labels(value: Any, count: int, num_classes: int, where: str) -> np.ndarray:
    array = np.asarray(value)
    if array.size == 0:
        array = array.astype(np.int64)
    if array.ndim != 1 or len(array) != count or not np.issubdtype(array.dtype, np.integer):
        raise DatasetError(f"{where}: expected {count} integer labels, got {value!r}")
    out_of_range = array[(array < 0) | (array >= num_classes)]
    if len(out_of_range):
        raise DatasetError(f"{where}: label {int(out_of_range[0])} is not in 0..{num_classes - 1} "
                           f"({num_classes} classes); labels are 0-based class indices")
    return array.astype(np.int64)
