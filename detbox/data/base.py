"""The one base of every dataset that reads files: what all annotation formats share.

A format (COCO JSON, VOC XML, the middle format, the synthetic shapes) supplies only an
``Annotations`` object that says how its files map to classes, images and boxes.
``DetectionDataset`` does the rest the same way for all of them: filtering empty images,
checking that every image file exists, the default pipeline, ``dataset[i]`` with unreadable
training images skipped, ``aspect_ratios``, the ``coco`` view for evaluation and the label map.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from pycocotools.coco import COCO
from torch import Tensor
from torch.utils.data import Dataset

from detbox.data.coco_validation import check_image_files
from detbox.data.skipping import SkippedImages, load_or_unreadable, load_skipping_unreadable
from detbox.data.transforms import Compose
from detbox.structures import DetSample
from detbox.utils.io import atomic_write_text

__all__ = [
    "Annotations",
    "DetectionDataset",
    "PipelineConfig",
    "default_pipeline",
    "write_label_map",
]

PipelineConfig = Sequence[Mapping[str, Any] | Callable[..., Any]]


def default_pipeline(test_mode: bool = False, with_mask: bool = False) -> list[dict[str, Any]]:
    """Load, normalize and pack at the original size; GT is loaded unless ``test_mode``."""
    steps: list[dict[str, Any]] = [{"type": "LoadImage"}]
    if not test_mode:
        steps.append({"type": "LoadAnnotations", "with_mask": with_mask})
    steps += [{"type": "Normalize"}, {"type": "PackDetInputs"}]
    return steps


class Annotations(Protocol):
    """What a dataset format reads from its files; images are named by their image id.

    Attributes:
        class_names: the kept classes, label ``i`` being ``class_names[i]``.
        cat_ids: the category id of each label.
        image_ids: every image of the files, in file order.
    """

    class_names: list[str]
    cat_ids: list[int]
    image_ids: list[int]

    def image_info(self, image_id: int) -> Mapping[str, Any]:
        """``file_name`` (relative to the image folder), ``width`` and ``height``."""
        ...

    def has_objects(self, image_id: int) -> bool:
        """Whether the image has an object (not ignored) of a kept class."""
        ...

    def instances(self, image_id: int) -> dict[str, Any]:
        """The ``ann`` entry of ``DetectionDataset.get_record`` for one image."""
        ...

    def to_coco(self, image_ids: Sequence[int]) -> COCO:
        """A pycocotools index holding at least ``image_ids`` and the kept categories."""
        ...


class DetectionDataset(Dataset):
    """Images and their annotations, read by ``annotations``, as pipeline outputs.

    Args:
        annotations: the format's reader of the annotation files.
        ann_file: what the annotations came from (named in messages; ``ann_file``).
        img_dir: folder that the images' ``file_name`` entries are relative to.
        pipeline: transform configs or callables; default: ``default_pipeline(test_mode,
            with_mask)``.
        with_mask: whether the default pipeline loads masks.
        filter_empty: drop images with no (non-ignored) object of a kept class; training only,
            ignored with ``test_mode``.
        test_mode: inference/evaluation use: no image is filtered; an image that cannot be
            read gives an ``UnreadableImage`` (see ``detbox.data.skipping``) instead of the
            item, which evaluation reports and leaves out.
        max_skipped_images: training only (ignored with ``test_mode``): an image that
            cannot be loaded is replaced by another with a warning naming the file, up to this
            many distinct files; one more is an error. 0 fails at the first one. See
            ``detbox.data.skipping``.
        label_map_out: write ``label_map.json`` here (a folder or a ``.json`` path).

    ``dataset[i]`` is what the pipeline returns, normally ``(image (3, H, W) float32, DetSample)``
    with ``sample.gt`` in the transformed image's coordinates.
    """

    def __init__(
        self,
        *,
        annotations: Annotations,
        ann_file: str | os.PathLike,
        img_dir: str | os.PathLike,
        pipeline: PipelineConfig | None = None,
        with_mask: bool = False,
        filter_empty: bool = False,
        test_mode: bool = False,
        max_skipped_images: int = 10,
        label_map_out: str | os.PathLike | None = None,
    ) -> None:
        self.annotations = annotations
        self.ann_file = str(ann_file)
        self.img_dir = str(img_dir)
        self.test_mode = test_mode
        self.max_skipped_images = 0 if test_mode else max(0, int(max_skipped_images))
        self._skipped = SkippedImages(self.max_skipped_images, self.ann_file)
        self.class_names = list(annotations.class_names)
        self.cat_ids = list(annotations.cat_ids)
        self.image_ids = list(annotations.image_ids)
        if filter_empty and not test_mode:
            self.image_ids = [i for i in self.image_ids if annotations.has_objects(i)]
        check_image_files([self._img_path(i) for i in self.image_ids], self.ann_file)
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
        infos = [self.annotations.image_info(i) for i in self.image_ids]
        return [info["width"] / info["height"] for info in infos]

    @property
    def coco(self) -> COCO:
        """The images and kept classes as a pycocotools index (built on first use)."""
        if self._coco is None:
            self._coco = self.annotations.to_coco(self.image_ids)
        return self._coco

    def __len__(self) -> int:
        return len(self.image_ids)

    def __getitem__(self, index: int) -> tuple[Tensor, DetSample]:
        if self.test_mode:
            return load_or_unreadable(self.pipeline, self.get_record(index))
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
        return os.path.join(self.img_dir, self.annotations.image_info(image_id)["file_name"])

    def get_record(self, index: int) -> dict[str, Any]:
        """The pipeline's input for image ``index``: file, sizes and its annotation record.

        ``ann`` holds ``boxes`` (N, 4) float32 xyxy, ``labels`` (N,) int64 (contiguous over the
        kept classes), ``ignored_boxes`` (M, 4) float32, and per box its ``segmentations`` (a
        polygon list or RLE, or None) and ``ann_ids`` (the box's id in its annotation file).
        """
        image_id = self.image_ids[index]
        info = self.annotations.image_info(image_id)
        return {
            "img_path": self._img_path(image_id),
            "image_id": image_id,
            "file_name": info["file_name"],
            "height": info["height"],
            "width": info["width"],
            "ann_file": self.ann_file,
            "ann": self.annotations.instances(image_id),
        }

    def write_label_map(self, path: str | os.PathLike) -> Path:
        """Write ``label_map.json`` (into ``path`` if it is a folder); returns the file."""
        return write_label_map(path, self.class_names, self.cat_ids)


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
