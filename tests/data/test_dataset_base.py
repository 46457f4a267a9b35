"""DetectionDataset: the one base every file-reading dataset builds on, driven by any reader."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from pycocotools.coco import COCO

import detbox.data  # noqa: F401  (registers every dataset)
from detbox.data import dataset_wrappers
from detbox.data.base import DetectionDataset
from detbox.data.coco import make_coco
from detbox.errors import DatasetError
from detbox.registry import DATASETS
from detbox.structures import DetSample


def test_every_registered_file_dataset_derives_directly_from_the_base():
    checked = []
    for name in DATASETS.names:
        factory = DATASETS.get(name)
        if not isinstance(factory, type) or not factory.__module__.startswith("detbox."):
            continue
        if (factory.__module__ == dataset_wrappers.__name__
                or issubclass(factory, dataset_wrappers.DatasetWrapper)):
            continue  # made of other datasets: no files of their own
        assert factory.__bases__ == (DetectionDataset,), name
        checked.append(name)
    assert {"CocoDataset", "CustomDataset", "SyntheticShapesDataset", "VOCDataset"} <= set(checked)


class TwoImages:
    """A minimal reader: two images, one box on the first, classes 'a' (id 7) and 'b' (id 9)."""

    class_names = ["a", "b"]
    cat_ids = [7, 9]
    image_ids = [10, 20]

    def __init__(self) -> None:
        self.infos = {10: {"file_name": "x.png", "width": 40, "height": 20},
                      20: {"file_name": "y.png", "width": 10, "height": 20}}

    def image_info(self, image_id: int) -> dict[str, Any]:
        return self.infos[image_id]

    def has_objects(self, image_id: int) -> bool:
        return image_id == 10

    def instances(self, image_id: int) -> dict[str, Any]:
        count = int(self.has_objects(image_id))
        return {"boxes": np.asarray([[2, 3, 12, 15]] * count, dtype=np.float32).reshape(-1, 4),
                "labels": np.asarray([1] * count, dtype=np.int64),
                "ignored_boxes": np.zeros((0, 4), dtype=np.float32),
                "segmentations": [None] * count, "ann_ids": list(range(count))}

    def to_coco(self, image_ids: Sequence[int]) -> COCO:
        images = [{"id": i, **self.infos[i]} for i in image_ids]
        categories = [{"id": c, "name": n} for c, n in zip(self.cat_ids, self.class_names)]
        return make_coco({"images": images, "annotations": [], "categories": categories})


@pytest.fixture
def img_dir(tmp_path: Path) -> Path:
    for name, size in (("x.png", (40, 20)), ("y.png", (10, 20))):
        Image.new("RGB", size, (90, 120, 150)).save(tmp_path / name)
    return tmp_path


def test_base_serves_any_reader(img_dir: Path, tmp_path: Path):
    dataset = DetectionDataset(annotations=TwoImages(), ann_file="two.json", img_dir=img_dir,
                               label_map_out=tmp_path / "maps")
    assert len(dataset) == 2 and dataset.num_classes == 2 and dataset.cat_ids == [7, 9]
    assert dataset.aspect_ratios == [2.0, 0.5]
    record = dataset.get_record(0)
    assert record["img_path"] == str(img_dir / "x.png") and record["image_id"] == 10
    assert (record["width"], record["height"], record["ann_file"]) == (40, 20, "two.json")
    image, sample = dataset[0]
    assert isinstance(sample, DetSample) and image.shape == (3, 20, 40)
    assert torch.equal(sample.gt.labels, torch.tensor([1]))
    assert sorted(dataset.coco.imgs) == [10, 20]
    written = json.loads((tmp_path / "maps" / "label_map.json").read_text())
    assert written["classes"][1] == {"label": 1, "category_id": 9, "name": "b"}
    assert repr(dataset) == "DetectionDataset('two.json', 2 images, 2 classes, test_mode=False)"


def test_base_filters_empty_images_only_for_training(img_dir: Path):
    train = DetectionDataset(annotations=TwoImages(), ann_file="t", img_dir=img_dir,
                             filter_empty=True)
    assert train.image_ids == [10] and sorted(train.coco.imgs) == [10]
    test = DetectionDataset(annotations=TwoImages(), ann_file="t", img_dir=img_dir,
                            filter_empty=True, test_mode=True)
    assert test.image_ids == [10, 20] and test.max_skipped_images == 0


def test_base_checks_image_files_at_creation(img_dir: Path):
    (img_dir / "y.png").unlink()
    with pytest.raises(DatasetError, match="y.png: image file not found"):
        DetectionDataset(annotations=TwoImages(), ann_file="two.json", img_dir=img_dir)
