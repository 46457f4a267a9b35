"""Datasets made of other datasets: several joined into one, or one repeated.

Both keep the dataset interface (``class_names``, ``cat_ids``, ``aspect_ratios``, ``ann_file``,
``get_record``, ``coco``), so they can train and be evaluated like any other dataset::

    train_dataloader = dict(dataset=dict(type="ConcatDataset", datasets=[
        dict(type="VOCDataset", data_root="data/VOC2007", split_file="ImageSets/Main/trainval.txt",
             pipeline=train_pipeline),
        dict(type="VOCDataset", data_root="data/VOC2012", split_file="ImageSets/Main/trainval.txt",
             pipeline=train_pipeline),
    ]))
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Mapping, Sequence
from typing import Any

from pycocotools.coco import COCO
from torch.utils.data import Dataset

from detbox.data.coco import make_coco
from detbox.errors import ConfigError
from detbox.registry import DATASETS

__all__ = ["ConcatDataset", "DatasetWrapper", "RepeatDataset"]


def _build(dataset: Mapping[str, Any] | Dataset) -> Dataset:
    return DATASETS.build(dataset)


@DATASETS.register
class ConcatDataset(Dataset):
    """Several datasets with the same classes, one after the other.

    Image ids are shifted per dataset (``image_id + offset``, the offsets being the running sum
    of each dataset's largest id) so they stay unique; ``coco`` merges the datasets' own COCO
    indexes with those ids, and with the first dataset's category ids.

    Args:
        datasets: dataset configs or built datasets; all must have the same ``class_names`` in
            the same order (set ``class_names`` in each to select or order them).

    Raises:
        ConfigError: no datasets, or datasets whose classes differ.
    """

    def __init__(self, datasets: Sequence[Mapping[str, Any] | Dataset]) -> None:
        if isinstance(datasets, Mapping) or not datasets:
            raise ConfigError("ConcatDataset needs a non-empty list of datasets")
        self.datasets = [_build(d) for d in datasets]
        first = self.datasets[0]
        for i, dataset in enumerate(self.datasets[1:], start=1):
            if list(dataset.class_names) != list(first.class_names):
                raise ConfigError(
                    f"ConcatDataset: dataset #{i} ({_source(dataset)}) has classes "
                    f"{list(dataset.class_names)} but dataset #0 ({_source(first)}) has "
                    f"{list(first.class_names)}; set the same class_names in every dataset"
                )
        self.class_names = list(first.class_names)
        self.cat_ids = list(first.cat_ids)
        self.ann_file = " + ".join(_source(d) for d in self.datasets)
        self.cumulative_sizes = list(itertools.accumulate(len(d) for d in self.datasets))
        self._offsets = self._image_id_offsets()
        self._coco: COCO | None = None

    def _image_id_offsets(self) -> list[int]:
        offsets, offset = [], 0
        for dataset in self.datasets:
            offsets.append(offset)
            ids = _image_ids(dataset)
            offset += max(ids) + 1 if ids else 0
        return offsets

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def aspect_ratios(self) -> list[float]:
        return [r for d in self.datasets for r in d.aspect_ratios]

    def __len__(self) -> int:
        return self.cumulative_sizes[-1] if self.cumulative_sizes else 0

    def _locate(self, index: int) -> tuple[int, int]:
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} images")
        which = bisect.bisect_right(self.cumulative_sizes, index)
        start = self.cumulative_sizes[which - 1] if which else 0
        return which, index - start

    def __getitem__(self, index: int) -> Any:
        which, local = self._locate(index)
        item = self.datasets[which][local]
        if isinstance(item, tuple) and len(item) == 2 and hasattr(item[1], "image_id"):
            item[1].image_id = int(item[1].image_id) + self._offsets[which]
        return item

    def get_record(self, index: int) -> dict[str, Any]:
        """The record of the dataset that holds ``index``, with the shifted image id."""
        which, local = self._locate(index)
        record = self.datasets[which].get_record(local)
        record["image_id"] = int(record["image_id"]) + self._offsets[which]
        return record

    @property
    def coco(self) -> COCO:
        """All datasets' COCO indexes in one, with shifted image and annotation ids."""
        if self._coco is None:
            self._coco = make_coco(self._merged_coco_dict())
        return self._coco

    def _merged_coco_dict(self) -> dict[str, Any]:
        first = self.datasets[0].coco.dataset
        categories = [c for c in first["categories"] if c["id"] in set(self.cat_ids)]
        images, annotations = [], []
        for dataset, offset in zip(self.datasets, self._offsets):
            to_first = dict(zip(dataset.cat_ids, self.cat_ids))
            data = dataset.coco.dataset
            images += [{**im, "id": im["id"] + offset} for im in data["images"]]
            for ann in data.get("annotations", []):
                if ann["category_id"] in to_first:
                    annotations.append({**ann, "id": len(annotations) + 1,
                                        "image_id": ann["image_id"] + offset,
                                        "category_id": to_first[ann["category_id"]]})
        return {"images": images, "annotations": annotations, "categories": categories}

    def __repr__(self) -> str:
        inner = ", ".join(repr(d) for d in self.datasets)
        return f"ConcatDataset([{inner}])"


class DatasetWrapper(Dataset):
    """A dataset over one wrapped ``self.dataset``: its classes, COCO index, source file,
    aspect ratios and records are the wrapped dataset's (subclasses change what differs)."""

    dataset: Dataset

    @property
    def class_names(self) -> list[str]:
        return list(self.dataset.class_names)

    @property
    def cat_ids(self) -> list[int]:
        return list(self.dataset.cat_ids)

    @property
    def num_classes(self) -> int:
        return len(self.dataset.class_names)

    @property
    def ann_file(self) -> str:
        return _source(self.dataset)

    @property
    def coco(self) -> COCO:
        return self.dataset.coco

    @property
    def aspect_ratios(self) -> list[float]:
        return list(self.dataset.aspect_ratios)

    def __len__(self) -> int:
        return len(self.dataset)

    def get_record(self, index: int) -> dict[str, Any]:
        return self.dataset.get_record(index)


@DATASETS.register
class RepeatDataset(DatasetWrapper):
    """A dataset repeated ``times`` times in every epoch (for small datasets, to make epochs
    long enough that per-epoch overheads such as evaluation and checkpoints stay small).

    Args:
        dataset: a dataset config or a built dataset.
        times: how many times each image appears per epoch (>= 1).
    """

    def __init__(self, dataset: Mapping[str, Any] | Dataset, times: int) -> None:
        if not isinstance(times, int) or isinstance(times, bool) or times < 1:
            raise ConfigError(f"RepeatDataset times must be a positive integer, got {times!r}")
        self.dataset = _build(dataset)
        self.times = times
        self._size = len(self.dataset)

    @property
    def aspect_ratios(self) -> list[float]:
        return list(self.dataset.aspect_ratios) * self.times

    def __len__(self) -> int:
        return self._size * self.times

    def __getitem__(self, index: int) -> Any:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} images")
        return self.dataset[index % self._size]

    def get_record(self, index: int) -> dict[str, Any]:
        return self.dataset.get_record(index % self._size)

    def __repr__(self) -> str:
        return f"RepeatDataset({self.dataset!r}, times={self.times})"


def _source(dataset: Dataset) -> str:
    return str(getattr(dataset, "ann_file", type(dataset).__name__))


def _image_ids(dataset: Dataset) -> list[int]:
    coco = getattr(dataset, "coco", None)
    if coco is not None:
        return [int(i) for i in coco.getImgIds()]
    return list(range(len(dataset)))
