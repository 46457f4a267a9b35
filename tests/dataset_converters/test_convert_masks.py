"""Instance-mask PNGs -> COCO RLE: Penn-Fudan's masks written as PNGs come back unchanged."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pycocotools.mask as mask_utils
import pytest
from convert_helpers import write_images
from PIL import Image

from detbox.cli.main import main
from detbox.dataset_converters import masks_to_coco
from detbox.errors import ConfigError, DatasetError
from tests.conftest import shared_dataset


def decode(segmentation: dict) -> np.ndarray:
    return mask_utils.decode({"size": segmentation["size"],
                              "counts": segmentation["counts"].encode("ascii")})


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # pycocotools' own, under NumPy 2
def test_pennfudan_masks_round_trip(tmp_path):
    root = shared_dataset("pennfudan")
    original = json.loads((root / "annotations" / "instances_val.json").read_text())
    by_image: dict[int, list[dict]] = {}
    for ann in original["annotations"]:
        by_image.setdefault(ann["image_id"], []).append(ann)
    mask_dir = tmp_path / "PedMasks"
    mask_dir.mkdir()
    for image in original["images"]:
        canvas = np.zeros((image["height"], image["width"]), dtype=np.uint8)
        for k, ann in enumerate(by_image.get(image["id"], []), start=1):
            canvas[decode(ann["segmentation"]) > 0] = k
        Image.fromarray(canvas).save(mask_dir / f"{Path(image['file_name']).stem}_mask.png")

    out = tmp_path / "coco.json"
    assert main(["convert", "masks2coco", str(mask_dir), str(root / "images"), str(out),
                 "--class-name", "person"]) == 0
    data = json.loads(out.read_text())
    assert data["categories"] == [{"id": 1, "name": "person"}]
    assert len(data["images"]) == 30 and len(data["annotations"]) == 77
    converted: dict[str, list[dict]] = {}
    names = {im["id"]: im["file_name"] for im in data["images"]}
    for ann in data["annotations"]:
        converted.setdefault(names[ann["image_id"]], []).append(ann)
    for image in original["images"]:
        expected = by_image.get(image["id"], [])
        got = converted.get(image["file_name"], [])
        assert len(got) == len(expected)
        for a, b in zip(expected, got):  # instance k was painted with value k: same order
            assert (decode(a["segmentation"]) == decode(b["segmentation"])).all()
            assert b["bbox"] == a["bbox"] and b["area"] == a["area"]


def test_category_patterns_and_errors(tmp_path):
    write_images(tmp_path / "images", {"cat_1.jpg": (8, 6), "dog_1.png": (8, 6)})
    masks = tmp_path / "masks"
    masks.mkdir()
    two = np.zeros((6, 8), np.uint8)
    two[1:3, 1:4], two[4:6, 5:8] = 3, 7
    Image.fromarray(two).save(masks / "cat_1_mask.png")
    Image.fromarray((two > 0).astype(np.uint8)).save(masks / "dog_1_mask.png")
    patterns = [("dog_*", "dog"), ("cat_*", "cat")]
    data = masks_to_coco(masks, tmp_path / "images", category_patterns=patterns)
    assert data["categories"] == [{"id": 1, "name": "dog"}, {"id": 2, "name": "cat"}]
    assert [(a["image_id"], a["category_id"], a["bbox"]) for a in data["annotations"]] == [
        (1, 2, [1, 1, 3, 2]), (1, 2, [5, 4, 3, 2]), (2, 1, [1, 1, 7, 5])]
    assert data["images"][0]["file_name"] == "cat_1.jpg"

    with pytest.raises(DatasetError, match=r"cat_1_mask\.png: matches none"):
        masks_to_coco(masks, tmp_path / "images", category_patterns=patterns[:1])
    with pytest.raises(ConfigError, match="either one class name or category patterns"):
        masks_to_coco(masks, tmp_path / "images")
    Image.new("RGB", (8, 6)).save(masks / "dog_1_mask.png")
    with pytest.raises(DatasetError, match=r"dog_1_mask\.png: a RGB image"):
        masks_to_coco(masks, tmp_path / "images", class_name="pet")
    (masks / "dog_1_mask.png").unlink()
    Image.fromarray(two).save(masks / "fox_mask.png")
    with pytest.raises(DatasetError, match=r"fox_mask\.png: no image named 'fox\.\*'"):
        masks_to_coco(masks, tmp_path / "images", class_name="pet")
