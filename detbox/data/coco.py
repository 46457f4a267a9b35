"""COCO-format detection and instance segmentation datasets."""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
from pycocotools.coco import COCO

from detbox.data.base import DetectionDataset, PipelineConfig, default_pipeline
from detbox.data.coco_validation import check_coco_dict, read_coco_json, select_categories
from detbox.registry import DATASETS

__all__ = ["CocoAnnotations", "CocoDataset", "PipelineConfig", "default_pipeline", "make_coco"]


@DATASETS.register
class CocoDataset(DetectionDataset):
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
        max_skipped_images: training only: unreadable images are skipped with a warning, up
            to this many distinct files (see ``DetectionDataset``).
        seg_prefix: folder of per-image semantic maps (COCO-stuff's ``stuffthingmaps``): the
            map of ``a/b.jpg`` is ``seg_prefix/a/b.png``, read by
            ``LoadAnnotations(with_seg=True)`` (HTC's semantic branch); None: no maps.

    ``dataset[i]`` is what the pipeline returns, normally ``(image (3, H, W) float32, DetSample)``
    with ``sample.gt`` in the transformed image's coordinates; ``coco`` is the file's own index.
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
        seg_prefix: str | os.PathLike | None = None,
    ) -> None:
        self.seg_prefix = None if seg_prefix is None else str(seg_prefix)
        annotations = CocoAnnotations(ann_file=ann_file, class_names=class_names,
                                      test_mode=test_mode)
        super().__init__(
            annotations=annotations, ann_file=ann_file, img_dir=img_dir, pipeline=pipeline,
            filter_empty=filter_empty, test_mode=test_mode,
            max_skipped_images=max_skipped_images,
        )

    def get_record(self, index: int) -> dict[str, Any]:
        """``DetectionDataset.get_record`` plus ``seg_path`` when there is a ``seg_prefix``."""
        record = super().get_record(index)
        if self.seg_prefix is not None:
            stem = os.path.splitext(record["file_name"])[0]
            record["seg_path"] = os.path.join(self.seg_prefix, stem + ".png")
        return record


class CocoAnnotations:
    """A COCO JSON file, checked as it is read, and its categories selected by name.

    Args:
        ann_file: COCO JSON file.
        class_names: keep only these categories, label ``i`` being ``class_names[i]``; None
            keeps all, in ascending id order.
        test_mode: the file may lack ``annotations``.

    Raises:
        DatasetError: one line naming the file, the first defect and the fix.
    """

    def __init__(
        self,
        *,
        ann_file: str | os.PathLike,
        class_names: Sequence[str] | None = None,
        test_mode: bool = False,
    ) -> None:
        ann_file = str(ann_file)
        data = read_coco_json(ann_file)
        check_coco_dict(data, ann_file, test_mode)
        self.cat_ids, self.class_names = select_categories(
            data["categories"], class_names, ann_file
        )
        self._label_of = {cat_id: label for label, cat_id in enumerate(self.cat_ids)}
        self.index = make_coco(data)
        self.image_ids = [im["id"] for im in data["images"]]

    def image_info(self, image_id: int) -> dict[str, Any]:
        return self.index.imgs[image_id]

    def has_objects(self, image_id: int) -> bool:
        return any(
            ann["category_id"] in self._label_of and not ann.get("iscrowd", 0)
            for ann in self.index.imgToAnns.get(image_id, [])
        )

    def instances(self, image_id: int) -> dict[str, Any]:
        """Boxes of kept categories as xyxy; crowd boxes go to ``ignored_boxes``.

        ``segmentations`` are the raw COCO entries and ``ann_ids`` the annotations' ids.
        """
        boxes, labels, ignored, segmentations, ann_ids = [], [], [], [], []
        for ann in self.index.imgToAnns.get(image_id, []):
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
            "boxes": np.asarray(boxes, dtype=np.float32).reshape(-1, 4),
            "labels": np.asarray(labels, dtype=np.int64),
            "ignored_boxes": np.asarray(ignored, dtype=np.float32).reshape(-1, 4),
            "segmentations": segmentations,
            "ann_ids": ann_ids,
        }

    def to_coco(self, image_ids: Sequence[int]) -> COCO:
        """The whole file's index (every image and category, as evaluation expects)."""
        return self.index


def make_coco(data: dict[str, Any]) -> COCO:
    """A pycocotools COCO index over an already loaded dict (quietly: it prints otherwise)."""
    coco = COCO()
    coco.dataset = data
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco
