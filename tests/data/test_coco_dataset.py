"""CocoDataset: masks in every COCO encoding, crowd regions, category mapping, filtering."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pycocotools.mask as mask_utils
import pytest
import torch
from coco_factory import CATEGORIES, box_annotation, image_entry

from detbox.data import CocoDataset
from detbox.errors import DatasetError
from detbox.registry import DATASETS
from detbox.structures import DetSample, Instances

GT_PIPELINE = [
    {"type": "LoadImage"},
    {"type": "LoadAnnotations", "with_mask": True},
    {"type": "PackDetInputs"},
]


def _rectangle(height: int, width: int, x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
    mask = np.zeros((height, width), dtype=np.uint8)
    mask[y0:y1, x0:x1] = 1
    return mask


def _uncompressed_rle(mask: np.ndarray) -> dict:
    flat = mask.flatten(order="F").tolist()
    counts, value, run = [], 0, 0
    for pixel in flat:
        if pixel != value:
            counts.append(run)
            value, run = pixel, 0
        run += 1
    counts.append(run)
    return {"size": list(mask.shape), "counts": counts}


def test_polygon_rle_and_crowd_annotations(make_coco) -> None:
    h, w = 30, 40
    compressed = mask_utils.encode(np.asfortranarray(_rectangle(h, w, 20, 2, 30, 12)))
    compressed["counts"] = compressed["counts"].decode("ascii")
    annotations = [
        box_annotation(1, 1, 1, [2, 3, 10, 8],
                       segmentation=[[2, 3, 12, 3, 12, 11, 2, 11]]),
        box_annotation(2, 1, 2, [5, 15, 6, 10],
                       segmentation=_uncompressed_rle(_rectangle(h, w, 5, 15, 11, 25))),
        box_annotation(3, 1, 1, [20, 2, 10, 10], segmentation=compressed),
        box_annotation(4, 1, 2, [0, 0, 40, 30], iscrowd=1,
                       segmentation=_uncompressed_rle(np.ones((h, w), np.uint8))),
    ]
    ann_file, img_dir = make_coco([image_entry(1, w, h)], annotations, CATEGORIES)
    dataset = CocoDataset(ann_file, img_dir, GT_PIPELINE)
    image, sample = dataset[0]
    assert image.shape == (3, h, w) and image.dtype == torch.float32
    assert isinstance(sample, DetSample) and isinstance(sample.gt, Instances)
    assert sample.gt.labels.tolist() == [0, 1, 0]
    assert sample.gt.labels.dtype == torch.int64 and sample.gt.boxes.dtype == torch.float32
    assert sample.gt.boxes.tolist() == [[2, 3, 12, 11], [5, 15, 11, 25], [20, 2, 30, 12]]
    assert sample.ignored_boxes.tolist() == [[0, 0, 40, 30]]
    masks = sample.gt.masks
    assert masks.dtype == torch.uint8 and masks.shape == (3, h, w)
    assert torch.equal(masks[1], torch.from_numpy(_rectangle(h, w, 5, 15, 11, 25)))
    assert torch.equal(masks[2], torch.from_numpy(_rectangle(h, w, 20, 2, 30, 12)))
    ys, xs = torch.nonzero(masks[0], as_tuple=True)  # polygon rasterized inside its box
    assert xs.min() >= 2 and xs.max() < 12 and ys.min() >= 3 and ys.max() < 11
    assert sample.image_id == 1 and sample.file_name == "img1.png"
    assert sample.ori_shape == sample.img_shape == (h, w)


def test_non_contiguous_category_ids_map_to_sorted_labels(make_coco) -> None:
    categories = [{"id": 42, "name": "zebra"}, {"id": 7, "name": "ant"}, {"id": 13, "name": "bee"}]
    annotations = [box_annotation(i + 1, 1, cat, [1, 1, 5, 5]) for i, cat in enumerate([13, 42, 7])]
    ann_file, img_dir = make_coco([image_entry(1)], annotations, categories)
    dataset = CocoDataset(ann_file, img_dir, [{"type": "LoadImage"}, {"type": "LoadAnnotations"},
                                              {"type": "PackDetInputs"}])
    assert dataset.cat_ids == [7, 13, 42]
    assert dataset.class_names == ["ant", "bee", "zebra"]
    _, sample = dataset[0]
    assert sample.gt.labels.tolist() == [1, 2, 0]
    assert [dataset.cat_ids[label] for label in sample.gt.labels] == [13, 42, 7]


def test_class_names_select_and_order_categories(make_coco) -> None:
    categories = CATEGORIES + [{"id": 3, "name": "bird"}]
    annotations = [box_annotation(i + 1, 1, cat, [1, 1, 5, 5]) for i, cat in enumerate([1, 2, 3])]
    ann_file, img_dir = make_coco([image_entry(1)], annotations, categories)
    dataset = CocoDataset(ann_file, img_dir, [{"type": "LoadImage"}, {"type": "LoadAnnotations"},
                                              {"type": "PackDetInputs"}],
                          class_names=["bird", "cat"])
    assert dataset.class_names == ["bird", "cat"] and dataset.cat_ids == [3, 1]
    assert dataset[0][1].gt.labels.tolist() == [1, 0]
    with pytest.raises(DatasetError, match=r"'dgo' \(closest: 'dog'\)"):
        CocoDataset(ann_file, img_dir, class_names=["cat", "dgo"])


def test_empty_images_are_kept_unless_filtered(make_coco) -> None:
    images = [image_entry(1), image_entry(2, 20, 40), image_entry(3)]
    annotations = [box_annotation(1, 1, 1, [1, 1, 5, 5]),
                   box_annotation(2, 3, 2, [1, 1, 5, 5], iscrowd=1)]
    ann_file, img_dir = make_coco(images, annotations, CATEGORIES)
    dataset = CocoDataset(ann_file, img_dir)
    assert len(dataset) == 3
    assert dataset.aspect_ratios == [40 / 30, 20 / 40, 40 / 30]
    _, empty = dataset[1]
    assert len(empty.gt) == 0 and empty.gt.boxes.shape == (0, 4)
    assert dataset.image_ids == [1, 2, 3]
    assert CocoDataset(ann_file, img_dir, filter_empty=True).image_ids == [1]
    assert len(CocoDataset(ann_file, img_dir, filter_empty=True, test_mode=True)) == 3


def test_test_mode_accepts_image_info_files(make_coco) -> None:
    ann_file, img_dir = make_coco([image_entry(1)], None, CATEGORIES)
    dataset = CocoDataset(ann_file, img_dir, test_mode=True)
    image, sample = dataset[0]
    assert sample.gt is None and image.shape == (3, 30, 40)
    with pytest.raises(DatasetError, match="test_mode=True"):
        CocoDataset(ann_file, img_dir)


def test_boxes_outside_the_image_are_clipped_or_dropped(make_coco) -> None:
    annotations = [box_annotation(1, 1, 1, [30, 20, 20, 20]),
                   box_annotation(2, 1, 2, [50, 5, 5, 5])]
    ann_file, img_dir = make_coco([image_entry(1)], annotations, CATEGORIES)
    dataset = CocoDataset(ann_file, img_dir)
    _, sample = dataset[0]
    assert sample.gt.boxes.tolist() == [[30, 20, 40, 30]] and sample.gt.labels.tolist() == [0]


def test_registered_and_built_from_config(make_coco) -> None:
    ann_file, img_dir = make_coco([image_entry(1)], [], CATEGORIES)
    dataset = DATASETS.build({"type": "CocoDataset", "ann_file": str(ann_file),
                              "img_dir": str(img_dir)})
    assert isinstance(dataset, CocoDataset) and dataset.ann_file == str(ann_file)
    assert dataset.coco.getImgIds() == [1]


def test_pennfudan_masks_match_boxes(pennfudan: Path) -> None:
    ann_file = pennfudan / "annotations" / "instances_val.json"
    dataset = CocoDataset(ann_file, pennfudan / "images", GT_PIPELINE)
    assert len(dataset) == 30 and dataset.class_names == ["person"]
    total = 0
    for index in range(0, len(dataset), 6):
        image, sample = dataset[index]
        record = json.loads(ann_file.read_text())["images"][index]
        assert image.shape == (3, record["height"], record["width"])
        for box, mask in zip(sample.gt.boxes, sample.gt.masks):
            ys, xs = torch.nonzero(mask, as_tuple=True)
            tight = torch.stack([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]).float()
            assert torch.equal(box, tight)
            total += 1
    assert total > 0
