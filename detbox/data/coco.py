"""COCO-format detection and instance segmentation datasets."""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from pycocotools.coco import COCO
from torch import Tensor
from torch.utils.data import Dataset

from detbox.data.coco_validation import (
    check_coco_dict,
    check_image_files,
    read_coco_json,
    select_categories,
)
from detbox.data.skipping import SkippedImages, load_skipping_unreadable
from detbox.data.transforms import Compose
from detbox.registry import DATASETS
from detbox.structures import DetSample

__all__ = ["CocoDataset", "default_pipeline", "make_coco"]

PipelineConfig = Sequence[Mapping[str, Any] | Callable[..., Any]]


def default_pipeline(test_mode: bool = False, with_mask: bool = False) -> list[dict[str, Any]]:
    """Load, normalize and pack at the original size; GT is loaded unless ``test_mode``."""
    steps: list[dict[str, Any]] = [{"type": "LoadImage"}]
    if not test_mode:
        steps.append({"type": "LoadAnnotations", "with_mask": with_mask})
    steps += [{"type": "Normalize"}, {"type": "PackDetInputs"}]
    return steps


@DATASETS.register
class CocoDataset(Dataset):
    """Images and annotations of a COCO JSON file.

    Category ids (any integers) map to contiguous labels ``0..C-1`` in ascending id order;
    ``cat_ids[label]`` gives the id back. Crowd annotations (``iscrowd=1``) become
    ``ignored_boxes``. Boxes are converted from ``[x, y, w, h]`` to ``x1, y1, x2, y2``.

    The whole file is checked when the dataset is created (structure, ids, boxes, image files
    present), so a broken dataset fails at once with one line naming the file and the fix.

    Args:
        ann_file: COCO JSON file.
        img_dir: folder that ``file_name`` entries are relative to.
        pipeline: transform configs or callables; default: ``default_pipeline(test_mode)``.
        class_names: keep only these categories, label ``i`` being ``class_names[i]``.
        filter_empty: drop images with no (non-crowd) annotation of a kept category; training
            only, ignored with ``test_mode``.
        test_mode: inference/evaluation use: the file may lack ``annotations`` and no image is
            filtered.
        max_skipped_images: training only (ignored with ``test_mode``, where every image must
            be evaluated): an image that cannot be loaded is replaced by another with a warning
            naming the file, up to this many distinct files; one more is an error. 0 fails at
            the first one. See ``detbox.data.skipping``.

    ``dataset[i]`` is what the pipeline returns, normally ``(image (3, H, W) float32, DetSample)``
    with ``sample.gt`` in the transformed image's coordinates.
    """

    def __init__(
        self,
        ann_file: str | os.PathLike,
        img_dir: str | os.PathLike,
        pipeline: PipelineConfig | None = None,
        *,
        class_names: Sequence[str] | None = None,
        filter_empty: bool = False,
        test_mode: bool = False,
        max_skipped_images: int = 10,
    ) -> None:
        self.ann_file = str(ann_file)
        self.img_dir = str(img_dir)
        self.test_mode = test_mode
        self.max_skipped_images = 0 if test_mode else max(0, int(max_skipped_images))
        self._skipped = SkippedImages(self.max_skipped_images, self.ann_file)
        data = read_coco_json(self.ann_file)
        check_coco_dict(data, self.ann_file, test_mode)
        self.cat_ids, self.class_names = select_categories(
            data["categories"], class_names, self.ann_file
        )
        self._label_of = {cat_id: label for label, cat_id in enumerate(self.cat_ids)}
        self.coco = make_coco(data)
        self.image_ids = [im["id"] for im in data["images"]]
        if filter_empty and not test_mode:
            self.image_ids = [i for i in self.image_ids if self._has_objects(i)]
        check_image_files([self._img_path(i) for i in self.image_ids], self.ann_file)
        self.pipeline = Compose(default_pipeline(test_mode) if pipeline is None else pipeline)

    @property
    def aspect_ratios(self) -> list[float]:
        """Width / height of every image, for grouping batches by orientation."""
        images = self.coco.imgs
        return [images[i]["width"] / images[i]["height"] for i in self.image_ids]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def __len__(self) -> int:
        return len(self.image_ids)

    def __getitem__(self, index: int) -> tuple[Tensor, DetSample]:
        if self.max_skipped_images == 0:
            return self.pipeline(self.get_record(index))
        return load_skipping_unreadable(
            lambda i: self.pipeline(self.get_record(i)), index, len(self), self._skipped,
            path_of=lambda i: self._img_path(self.image_ids[i]),
        )

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({self.ann_file!r}, {len(self)} images, "
                f"{self.num_classes} classes, test_mode={self.test_mode})")

    def _img_path(self, image_id: int) -> str:
        return os.path.join(self.img_dir, self.coco.imgs[image_id]["file_name"])

    def _has_objects(self, image_id: int) -> bool:
        return any(
            ann["category_id"] in self._label_of and not ann.get("iscrowd", 0)
            for ann in self.coco.imgToAnns.get(image_id, [])
        )

    def get_record(self, index: int) -> dict[str, Any]:
        """The pipeline's input for image ``index``: file, sizes and its annotation record.

        ``ann`` holds ``boxes`` (N, 4) float32 xyxy, ``labels`` (N,) int64, ``ignored_boxes``
        (M, 4) float32, and per box its ``segmentations`` (raw COCO) and ``ann_ids``.
        """
        image_id = self.image_ids[index]
        info = self.coco.imgs[image_id]
        boxes, labels, ignored, segmentations, ann_ids = [], [], [], [], []
        for ann in self.coco.imgToAnns.get(image_id, []):
            label = self._label_of.get(ann["category_id"])
            if label is None:
                continue
            x, y, w, h = ann["bbox"]
            if ann.get("iscrowd", 0):
                ignored.append([x, y, x + w, y + h])
                continue
            boxes.append([x, y, x + w, y + h])
            labels.append(label)
            segmentations.append(ann.get("segmentation"))
            ann_ids.append(ann["id"])
        return {
            "img_path": self._img_path(image_id),
            "image_id": image_id,
            "file_name": info["file_name"],
            "height": info["height"],
            "width": info["width"],
            "ann_file": self.ann_file,
            "ann": {
                "boxes": np.asarray(boxes, dtype=np.float32).reshape(-1, 4),
                "labels": np.asarray(labels, dtype=np.int64),
                "ignored_boxes": np.asarray(ignored, dtype=np.float32).reshape(-1, 4),
                "segmentations": segmentations,
                "ann_ids": ann_ids,
            },
        }


def make_coco(data: dict[str, Any]) -> COCO:
    """A pycocotools COCO index over an already loaded dict (quietly: it prints otherwise)."""
    coco = COCO()
    coco.dataset = data
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco
