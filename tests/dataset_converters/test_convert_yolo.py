"""COCO -> YOLO -> COCO keeps every box; YOLO label errors name the file and line."""

from __future__ import annotations

import json

import pytest
from convert_helpers import boxes_by_image, write_images

from detbox.cli.main import main
from detbox.dataset_converters import coco_to_yolo, yolo_to_coco
from detbox.errors import DatasetError
from tests.conftest import shared_dataset


def assert_same_boxes(a: dict, b: dict, rel: float = 1e-3) -> None:
    assert set(a) == set(b)
    for stem in a:
        assert [(n, c) for n, _, c in a[stem]] == [(n, c) for n, _, c in b[stem]], stem
        for (_, box_a, _), (_, box_b, _) in zip(a[stem], b[stem]):
            assert box_b == pytest.approx(box_a, rel=rel, abs=1e-6), stem


def test_microcontroller_round_trip(tmp_path):
    root = shared_dataset("microcontroller")
    ann_file = root / "annotations" / "instances_val.json"
    counts = coco_to_yolo(ann_file, tmp_path / "labels")
    assert counts == {"images": 25, "annotations": 32, "categories": 4}
    assert (tmp_path / "labels" / "classes.txt").read_text().split() == [
        "Raspberry_Pi_3", "Arduino_Nano", "ESP8266", "Heltec_ESP32_Lora"]
    back = yolo_to_coco(root / "images", tmp_path / "labels", tmp_path / "labels" / "classes.txt")
    original = boxes_by_image(ann_file)
    converted = {k: v for k, v in boxes_by_image(back).items() if k in original}
    assert_same_boxes(original, converted)
    assert len(back["images"]) == 124  # train images are there too, without labels


def tiny_coco(tmp_path):
    write_images(tmp_path / "images", {"a.png": (64, 48), "sub/b.jpg": (33, 17),
                                       "c.png": (10, 10)})
    data = {"images": [{"id": 4, "file_name": "a.png", "width": 64, "height": 48},
                       {"id": 9, "file_name": "sub/b.jpg", "width": 33, "height": 17},
                       {"id": 2, "file_name": "c.png", "width": 10, "height": 10}],
            "categories": [{"id": 3, "name": "cat"}, {"id": 1, "name": "dog"}],
            "annotations": [
                {"id": 1, "image_id": 4, "category_id": 3, "bbox": [1.5, 2.25, 30.1, 40.7]},
                {"id": 2, "image_id": 4, "category_id": 1, "bbox": [0, 0, 64, 48]},
                {"id": 3, "image_id": 9, "category_id": 1, "bbox": [3.3, 1.1, 7.7, 9.9]},
                {"id": 4, "image_id": 9, "category_id": 3, "bbox": [0, 0, 5, 5], "iscrowd": 1}]}
    (tmp_path / "ann.json").write_text(json.dumps(data))
    return tmp_path / "ann.json", data


def test_tiny_round_trip_through_the_cli(tmp_path, capsys):
    ann_file, data = tiny_coco(tmp_path)
    labels, out = tmp_path / "labels", tmp_path / "back.json"
    assert main(["convert", "coco2yolo", str(ann_file), str(labels)]) == 0
    assert (labels / "a.txt").read_text().splitlines()[1] == "0 0.500000 0.500000 1.000000 1.000000"
    assert (labels / "c.txt").read_text() == ""  # background image
    assert main(["convert", "yolo2coco", str(tmp_path / "images"), str(labels),
                 str(labels / "classes.txt"), str(out)]) == 0
    assert "3 images, 3 annotations, 2 categories" in capsys.readouterr().out
    expected = boxes_by_image(data)
    expected["b"] = [obj for obj in expected["b"] if not obj[2]]  # crowd boxes are left out
    assert_same_boxes(expected, boxes_by_image(out))


def test_yaml_names_segments_and_errors(tmp_path):
    write_images(tmp_path / "images", {"a.png": (100, 50)})
    labels = tmp_path / "labels"
    labels.mkdir()
    (tmp_path / "data.yaml").write_text("names:\n  0: ship\n  1: plane\n")
    (labels / "a.txt").write_text("1 0.5 0.5 0.2 0.4\n\n0 0.1 0.2 0.3 0.2 0.2 0.6\n")
    data = yolo_to_coco(tmp_path / "images", labels, tmp_path / "data.yaml")
    assert [c["name"] for c in data["categories"]] == ["ship", "plane"]
    plane, ship = data["annotations"]
    assert plane["category_id"] == 2 and plane["bbox"] == pytest.approx([40, 15, 20, 20])
    assert ship["bbox"] == pytest.approx([10, 10, 20, 20])
    assert ship["segmentation"] == [pytest.approx([10, 10, 30, 10, 20, 30])]
    for line, message in (("2 0.5 0.5 0.1 0.1", r"a\.txt:1: class 2 is not in 0\.\.1"),
                          ("0 0.5 0.5 0.1 0.1 0.9", "6 fields"),
                          ("x 0.5 0.5 0.1 0.1", "expected 'class cx cy w h'")):
        (labels / "a.txt").write_text(line + "\n")
        with pytest.raises(DatasetError, match=message):
            yolo_to_coco(tmp_path / "images", labels, tmp_path / "data.yaml")
