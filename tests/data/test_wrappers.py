"""ConcatDataset, RepeatDataset and class subsets with contiguous labels."""

from __future__ import annotations

import pytest
import torch
from coco_factory import box_annotation, image_entry
from test_voc_dataset import TINY, write_voc

from detbox.data import (
    CocoDataset,
    ConcatDataset,
    RepeatDataset,
    VOCDataset,
    build_dataloader,
    build_dataset,
)
from detbox.errors import ConfigError
from detbox.evaluation import CocoMetric

COCO_CATEGORIES = [{"id": 5, "name": "cat"}, {"id": 7, "name": "bird"}, {"id": 9, "name": "dog"}]


@pytest.fixture
def voc_root(tmp_path):
    return write_voc(tmp_path / "voc", TINY)


@pytest.fixture
def coco_files(make_coco):
    images = [image_entry(3), image_entry(8, width=20, height=40)]
    annotations = [box_annotation(1, 3, 5, [1, 1, 10, 10]), box_annotation(2, 3, 9, [5, 5, 8, 8]),
                   box_annotation(3, 8, 7, [2, 2, 5, 5]), box_annotation(4, 8, 9, [0, 0, 4, 4])]
    return make_coco(images, annotations, COCO_CATEGORIES)


def perfect_predictions(dataset):
    samples, predictions = [], []
    for i in range(len(dataset)):
        _, sample = dataset[i]
        samples.append(sample)
        predictions.append(sample.gt.__class__(boxes=sample.gt.boxes, labels=sample.gt.labels,
                                               scores=torch.ones(len(sample.gt))))
    return samples, predictions


def test_coco_class_subset_gets_contiguous_labels(coco_files):
    ann_file, img_dir = coco_files
    dataset = CocoDataset(ann_file, img_dir, class_names=["dog", "cat"])
    assert dataset.cat_ids == [9, 5]
    record = dataset.get_record(0)
    assert record["ann"]["labels"].tolist() == [1, 0]
    assert dataset.get_record(1)["ann"]["labels"].tolist() == [0]  # the bird is dropped


def test_concat_shifts_image_ids_and_merges_the_coco_index(voc_root, coco_files):
    ann_file, img_dir = coco_files
    names = ["dog", "cat"]
    coco_cfg = dict(type="CocoDataset", ann_file=str(ann_file), img_dir=str(img_dir),
                    class_names=names)
    with pytest.warns(UserWarning, match="bird"):
        concat = build_dataset(dict(type="ConcatDataset", datasets=[
            dict(type="VOCDataset", data_root=str(voc_root), class_names=names), coco_cfg]))
    assert len(concat) == 5 and concat.class_names == names and concat.cat_ids == [1, 2]
    assert concat.get_record(3)["image_id"] == 3 + 4  # VOC ids are 1..3, so COCO's shift by 4
    assert concat[4][1].image_id == 8 + 4 and concat[-1][1].image_id == 12
    assert concat.aspect_ratios == pytest.approx([40 / 30, 1.0, 1.5, 40 / 30, 0.5])
    coco = concat.coco
    assert sorted(coco.getImgIds()) == [1, 2, 3, 7, 12]
    assert {a["category_id"] for a in coco.dataset["annotations"]} == {1, 2}
    metric = CocoMetric(coco_gt=coco, cat_ids=concat.cat_ids)
    metric.process(*perfect_predictions(concat))
    assert metric.evaluate()["bbox_mAP"] == pytest.approx(1.0)
    with pytest.raises(IndexError):
        concat[5]


def test_concat_with_different_classes_is_a_config_error(voc_root, coco_files):
    ann_file, img_dir = coco_files
    message = (r"dataset #1 \(.*ann.json\) has classes \['cat', 'bird', 'dog'\] "
               r"but dataset #0 .* has \['bird', 'cat', 'dog'\]")
    with pytest.raises(ConfigError, match=message):
        ConcatDataset([VOCDataset(voc_root), CocoDataset(ann_file, img_dir)])
    with pytest.raises(ConfigError, match="non-empty list"):
        ConcatDataset([])


def test_repeat_dataset(voc_root):
    repeated = build_dataset(dict(type="RepeatDataset", times=3,
                                  dataset=dict(type="VOCDataset", data_root=str(voc_root))))
    assert len(repeated) == 9 and repeated.class_names == ["bird", "cat", "dog"]
    assert len(repeated.aspect_ratios) == 9 and repeated.coco is repeated.dataset.coco
    assert repeated[4][1].image_id == repeated[1][1].image_id == 2
    assert repeated.get_record(8)["file_name"] == "c.jpg"
    with pytest.raises(IndexError):
        repeated[9]
    with pytest.raises(ConfigError, match="positive integer"):
        RepeatDataset(repeated.dataset, times=0)


def test_wrappers_feed_a_training_loader(voc_root):
    loader = build_dataloader(dict(batch_size=2, num_workers=0, dataset=dict(
        type="RepeatDataset", times=2, dataset=dict(type="ConcatDataset", datasets=[
            dict(type="VOCDataset", data_root=str(voc_root)),
            dict(type="VOCDataset", data_root=str(voc_root)),
        ]))), training=True)
    loader.set_epoch(0)
    batches = list(loader)
    assert sum(len(b) for b in batches) == 12
    assert {s.image_id for b in batches for s in b.samples} == {1, 2, 3, 5, 6, 7}
