"""CustomDataset: the middle format from JSON or pickle, class subsets, masks and errors."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pycocotools.mask as mask_utils
import pytest
import torch
from PIL import Image

from detbox.data import CustomDataset, build_dataset
from detbox.errors import DatasetError
from detbox.evaluation import CocoMetric


class FruitDataset(CustomDataset):
    CLASSES = ("apple", "banana", "cherry")


def rle_of(mask: np.ndarray) -> dict:
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": list(rle["size"]), "counts": rle["counts"].decode("ascii")}


def middle_records() -> list[dict]:
    square = np.zeros((20, 30), dtype=np.uint8)
    square[2:8, 4:12] = 1
    return [
        {"filename": "a.png", "width": 30, "height": 20,
         "ann": {"bboxes": [[4, 2, 12, 8], [10, 10, 20, 18]], "labels": [0, 2],
                 "bboxes_ignore": [[0, 0, 3, 3]], "labels_ignore": [1],
                 "masks": [rle_of(square), [[10, 10, 20, 10, 20, 18, 10, 18]]]}},
        {"filename": "sub/b.png", "width": 16, "height": 24,
         "ann": {"bboxes": [[1, 1, 5, 9]], "labels": [1], "masks": [[[1, 1, 5, 1, 5, 9]]]}},
        {"filename": "c.png", "width": 10, "height": 10,
         "ann": {"bboxes": np.zeros((0, 4)), "labels": np.zeros((0,), dtype=np.int64),
                 "masks": []}},
    ]


def write_images(img_dir: Path, records: list[dict]) -> Path:
    for record in records:
        path = img_dir / record["filename"]
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (record["width"], record["height"]), (10, 200, 40)).save(path)
    return img_dir


def write_json(path: Path, data) -> Path:
    def plain(value):
        return value.tolist() if isinstance(value, np.ndarray) else value

    path.write_text(json.dumps(data, default=plain))
    return path


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    records = middle_records()
    img_dir = write_images(tmp_path / "images", records)
    return write_json(tmp_path / "ann.json", records), img_dir


def test_json_records_become_coco_like_samples(files):
    ann_file, img_dir = files
    dataset = CustomDataset(ann_file, img_dir, class_names=["apple", "banana", "cherry"])
    assert len(dataset) == 3 and dataset.cat_ids == [1, 2, 3]
    record = dataset.get_record(0)
    assert record["ann"]["boxes"].tolist() == [[4, 2, 12, 8], [10, 10, 20, 18]]
    assert record["ann"]["labels"].tolist() == [0, 2]
    assert record["ann"]["ignored_boxes"].tolist() == [[0, 0, 3, 3]]
    image, sample = dataset[0]  # the default pipeline loads the masks the records carry
    assert image.shape == (3, 20, 30) and sample.gt.masks.shape == (2, 20, 30)
    assert sample.gt.masks[0].sum() == 48 and sample.gt.masks[1].sum() > 0
    assert dataset.get_record(1)["img_path"].endswith("sub/b.png")
    assert dataset.aspect_ratios == [1.5, 16 / 24, 1.0]
    filtered = CustomDataset(ann_file, img_dir, class_names=["apple", "banana", "cherry"],
                             filter_empty=True)
    assert filtered.image_ids == [1, 2]


def test_coco_view_scores_perfect_predictions_as_one(files):
    ann_file, img_dir = files
    dataset = CustomDataset(ann_file, img_dir, class_names=["apple", "banana", "cherry"])
    crowd = [a for a in dataset.coco.dataset["annotations"] if a["iscrowd"]]
    assert [(a["category_id"], a["bbox"]) for a in crowd] == [(2, [0.0, 0.0, 3.0, 3.0])]
    metric = CocoMetric(coco_gt=dataset.coco, iou_types=("bbox", "segm"))
    for i in range(len(dataset)):
        _, sample = dataset[i]
        gt = sample.gt
        gt.scores, gt.masks = torch.ones(len(gt)), gt.masks.bool()
        metric.process([sample], [gt])
    metrics = metric.evaluate()
    assert metrics["bbox_mAP"] == pytest.approx(1.0) and metrics["segm_mAP"] == pytest.approx(1.0)


def test_pickle_with_classes_and_a_subset_remapped(tmp_path):
    records = middle_records()
    img_dir = write_images(tmp_path / "images", records)
    ann_file = tmp_path / "ann.pkl"
    ann_file.write_bytes(pickle.dumps({"classes": ["apple", "banana", "cherry"],
                                       "images": records}))
    dataset = CustomDataset(ann_file, img_dir, class_names=["cherry", "banana"])
    assert dataset.class_names == ["cherry", "banana"] and dataset.cat_ids == [3, 2]
    record = dataset.get_record(0)
    assert record["ann"]["labels"].tolist() == [0]  # cherry; the apple is dropped
    assert record["ann"]["boxes"].tolist() == [[10, 10, 20, 18]]
    assert record["ann"]["ignored_boxes"].tolist() == [[0, 0, 3, 3]]  # a banana region
    assert dataset.get_record(1)["ann"]["labels"].tolist() == [1]
    assert [c["id"] for c in dataset.coco.dataset["categories"]] == [3, 2]


def test_subclass_with_classes_attribute(files, tmp_path):
    ann_file, img_dir = files
    dataset = build_dataset(dict(type=FruitDataset, ann_file=str(ann_file), img_dir=str(img_dir),
                                 class_names=["apple"], label_map_out=str(tmp_path)))
    assert dataset.class_names == ["apple"] and len(dataset.get_record(0)["ann"]["labels"]) == 1
    label_map = json.loads((tmp_path / "label_map.json").read_text())
    assert label_map == {"classes": [{"label": 0, "category_id": 1, "name": "apple"}]}
    with pytest.raises(DatasetError, match=r"'aple' \(closest: 'apple'\)"):
        FruitDataset(ann_file, img_dir, class_names=["aple"])


@pytest.mark.parametrize("change, message", [
    (lambda r: r[1]["ann"].update(labels=[3]), r"record #1 \(sub/b.png\) labels: label 3 is not"),
    (lambda r: r[0]["ann"].update(bboxes=[[4, 2, 2, 8], [1, 1, 2, 2]]), "box #0 .* x2 <= x1"),
    (lambda r: r[0].pop("width"), "record #0 is missing required key 'width'"),
    (lambda r: r[2].pop("ann"), r"record #2 \(c.png\): missing 'ann'"),
    (lambda r: r[0]["ann"].update(masks=[None]), "1 masks for 2 bboxes"),
    (lambda r: r[1]["ann"].update(bboxes=[[1, 2, 3]]), r"expected an \(N, 4\)"),
])
def test_errors_name_the_file_and_the_record(tmp_path, change, message):
    records = middle_records()
    change(records)
    img_dir = write_images(tmp_path / "images", [r for r in records if "width" in r])
    ann_file = write_json(tmp_path / "ann.json", records)
    with pytest.raises(DatasetError, match=message) as error:
        CustomDataset(ann_file, img_dir, class_names=["apple", "banana", "cherry"])
    assert str(ann_file) in str(error.value)


def test_class_names_are_required_and_test_mode_allows_no_ann(tmp_path, files):
    ann_file, img_dir = files
    with pytest.raises(DatasetError, match="no class names"):
        CustomDataset(ann_file, img_dir)
    bare = write_json(tmp_path / "bare.json", [{"filename": "c.png", "width": 10, "height": 10}])
    dataset = CustomDataset(bare, img_dir, class_names=["x"], test_mode=True)
    _, sample = dataset[0]
    assert sample.gt is None and dataset.coco.dataset["annotations"] == []
