"""Cityscapes -> COCO on a tiny folder in the official layout."""

from __future__ import annotations

import json
import logging

import numpy as np
import pycocotools.mask as mask_utils
import pytest
from cityscapes_layout import OBJECTS, expected_objects, instance_ids, write_cityscapes
from convert_helpers import boxes_by_image

from detbox.cli.main import main
from detbox.data import CocoDataset
from detbox.data.skipping import UnreadableFiles
from detbox.dataset_converters.cityscapes import (
    CITYSCAPES_THING_CLASSES,
    CITYSCAPES_THING_IDS,
    cityscapes_to_coco,
)
from detbox.errors import DatasetError

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # pycocotools, NumPy 2


def test_val_keeps_every_image_with_masks_from_the_instance_ids(tmp_path):
    root = write_cityscapes(tmp_path / "cityscapes", "val")
    data = cityscapes_to_coco(root, split="val")

    assert [c["id"] for c in data["categories"]] == list(CITYSCAPES_THING_IDS)
    assert [c["name"] for c in data["categories"]] == list(CITYSCAPES_THING_CLASSES)
    assert [im["file_name"] for im in data["images"]] == [f"{s}_leftImg8bit.png" for s in OBJECTS]
    assert boxes_by_image(data) == expected_objects()
    for im in data["images"]:
        ids = instance_ids(OBJECTS[im["file_name"][: -len("_leftImg8bit.png")]])
        for ann in (a for a in data["annotations"] if a["image_id"] == im["id"]):
            mask = mask_utils.decode({"size": ann["segmentation"]["size"],
                                      "counts": ann["segmentation"]["counts"].encode()})
            value = ann["category_id"] if ann["iscrowd"] else int(ids[mask > 0][0])
            np.testing.assert_array_equal(mask > 0, ids == value)
            assert ann["area"] == int((ids == value).sum())
            assert (im["width"], im["height"]) == (64, 32)


def test_train_skips_images_without_instances_and_the_cli_writes_both_splits(tmp_path, capsys):
    root = tmp_path / "cityscapes"
    write_cityscapes(root, "train")
    write_cityscapes(root, "val")
    out_dir = tmp_path / "annotations"
    assert main(["convert", "cityscapes", str(root), str(out_dir)]) == 0
    train = json.loads((out_dir / "instancesonly_filtered_gtFine_train.json").read_text())
    val = json.loads((out_dir / "instancesonly_filtered_gtFine_val.json").read_text())
    assert [im["file_name"] for im in train["images"]] == [
        "aachen/aachen_000000_000019_leftImg8bit.png",
        "aachen/aachen_000001_000019_leftImg8bit.png"]
    assert len(val["images"]) == 3
    assert "wrote 2 images, 5 annotations, 8 categories" in capsys.readouterr().out

    dataset = CocoDataset(out_dir / "instancesonly_filtered_gtFine_train.json",
                          root / "leftImg8bit" / "train", filter_empty=True)
    assert dataset.class_names == list(CITYSCAPES_THING_CLASSES)
    record = dataset.get_record(0)["ann"]
    assert sorted(record["labels"].tolist()) == [0, 2]  # person, car; the crowd is ignored
    np.testing.assert_array_equal(record["ignored_boxes"], [[50, 18, 62, 30]])


@pytest.mark.parametrize("bad", ["polygons", "instance_ids", "size"])
def test_a_corrupt_annotation_file_is_reported_and_skipped(tmp_path, caplog, capsys, bad):
    root = write_cityscapes(tmp_path / "cityscapes", "val")
    gt = root / "gtFine" / "val" / "aachen" / "aachen_000001_000019"
    if bad == "polygons":
        gt.with_name(gt.name + "_gtFine_polygons.json").write_text('{"imgHeight": 32, "imgW')
    elif bad == "instance_ids":
        gt.with_name(gt.name + "_gtFine_instanceIds.png").write_bytes(b"\x89PNG\r\n garbage")
    else:
        from PIL import Image

        Image.new("I;16", (32, 16)).save(gt.with_name(gt.name + "_gtFine_instanceIds.png"))
    skipped = UnreadableFiles("images")
    with caplog.at_level(logging.WARNING, logger="detbox.data"):
        data = cityscapes_to_coco(root, split="val", skipped=skipped)
    assert [im["file_name"] for im in data["images"]] == [
        "aachen/aachen_000000_000019_leftImg8bit.png",
        "bremen/bremen_000000_000019_leftImg8bit.png"]
    assert len(skipped) == 1 and "aachen_000001_000019" in skipped.details[0]
    assert "aachen_000001_000019_gtFine" in caplog.text

    out_dir = tmp_path / "out"
    assert main(["convert", "cityscapes", str(root), str(out_dir), "--splits", "val"]) == 0
    assert "skipped 1 image(s) of 'val'" in capsys.readouterr().out


def test_nothing_convertible_is_an_error(tmp_path):
    with pytest.raises(DatasetError, match="no '<city>/"):
        cityscapes_to_coco(tmp_path, split="val")
    root = write_cityscapes(tmp_path / "cityscapes", "val")
    for path in (root / "gtFine").rglob("*instanceIds.png"):
        path.unlink()
    with pytest.raises(DatasetError, match="none of the 3 images"):
        cityscapes_to_coco(root, split="val")


def test_the_recipe_datasets_load_the_converted_folder(tmp_path):
    """configs/_base_/datasets/cityscapes_*.py, pointed at the tiny folder, give masks at the
    recipe's scales: training short side 800-1024, testing 2048x1024 (images 64x32: x32)."""
    from detbox.config import load_config
    from detbox.data.build import build_dataset
    from tests.conftest import REPO_ROOT

    root = tmp_path / "cityscapes"
    write_cityscapes(root, "train")
    write_cityscapes(root, "val")
    assert main(["convert", "cityscapes", str(root), str(root / "annotations")]) == 0
    cfg = load_config(REPO_ROOT / "configs" / "_base_" / "datasets" / "cityscapes_instance.py")
    train_cfg = cfg["train_dataloader"]["dataset"].to_dict()
    inner = train_cfg["dataset"]
    inner["ann_file"] = inner["ann_file"].replace("data/cityscapes", str(root))
    inner["img_dir"] = inner["img_dir"].replace("data/cityscapes", str(root))
    train = build_dataset(train_cfg)
    assert len(train) == 8 * 2 and train.class_names == list(CITYSCAPES_THING_CLASSES)
    image, sample = train[0]
    assert 800 <= image.shape[1] <= 1024 and image.shape[2] == 2 * image.shape[1]
    assert sample.gt.masks.shape[1:] == image.shape[1:] and len(sample.gt) == 2

    val_cfg = cfg["val_dataloader"]["dataset"].to_dict()
    val_cfg["ann_file"] = val_cfg["ann_file"].replace("data/cityscapes", str(root))
    val_cfg["img_dir"] = val_cfg["img_dir"].replace("data/cityscapes", str(root))
    val = build_dataset(val_cfg)
    assert len(val) == 3 and tuple(val[2][0].shape[1:]) == (1024, 2048)
    assert cfg["evaluation"]["metric"] == ["bbox", "segm", "cityscapes"]


def test_instance_annotations_of_given_values_only():
    """The shared mask helper, with ``values`` (used here per class), in the order given."""
    from detbox.dataset_converters.masks import instance_annotations

    ids = np.zeros((6, 8), dtype=np.int64)
    ids[1:3, 1:4], ids[4:6, 5:8], ids[0, 7] = 26001, 24000, 26000
    anns = instance_annotations(ids, 3, 26, values=[26001, 26000])
    assert [a["bbox"] for a in anns] == [[1.0, 1.0, 3.0, 2.0], [7.0, 0.0, 1.0, 1.0]]
    assert [a["area"] for a in anns] == [6.0, 1.0]
    assert all(a["image_id"] == 3 and a["category_id"] == 26 for a in anns)
    assert len(instance_annotations(ids, 3, 26)) == 3  # every nonzero value by default
