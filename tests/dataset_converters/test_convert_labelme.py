"""LabelMe -> COCO: polygons, rectangles, circles and grouped shapes keep their geometry."""

from __future__ import annotations

import json
import math

import pytest
from convert_helpers import write_images

from detbox.cli.main import main
from detbox.data import CocoDataset
from detbox.dataset_converters import labelme_to_coco
from detbox.errors import DatasetError

TRIANGLE = [[10, 10], [30, 10], [20, 25]]


def shape(label, points, kind="polygon", group=None):
    return {"label": label, "points": points, "shape_type": kind, "group_id": group, "flags": {}}


def write_labelme(json_dir, name, image_path, shapes, size=(60, 40)):
    json_dir.mkdir(parents=True, exist_ok=True)
    data = {"version": "5.2.1", "flags": {}, "shapes": shapes, "imagePath": image_path,
            "imageData": None, "imageWidth": size[0], "imageHeight": size[1]}
    (json_dir / f"{name}.json").write_text(json.dumps(data))


@pytest.fixture
def labelme_dir(tmp_path):
    write_images(tmp_path / "images", {"a.jpg": (60, 40), "b.png": (50, 50)})
    json_dir = tmp_path / "labels"
    write_labelme(json_dir, "a", "../images/a.jpg", [
        shape("cat", TRIANGLE),
        shape("dog", [[40, 30], [5, 2]], "rectangle"),
        shape("tail", [[1, 1]], "point"),
    ])
    write_labelme(json_dir, "b", "..\\images\\b.png", [
        shape("cat", [[0, 0], [10, 0], [10, 10], [0, 10]], group=1),
        shape("cat", [[20, 20], [30, 20], [30, 30], [20, 30]], group=1),
        shape("dog", [[25, 25], [35, 25]], "circle"),
    ], size=(50, 50))
    return tmp_path


def test_shapes_become_coco_objects(labelme_dir, capsys):
    out = labelme_dir / "coco.json"
    assert main(["convert", "labelme2coco", str(labelme_dir / "labels"), str(out),
                 "--img-dir", str(labelme_dir / "images")]) == 0
    assert "2 images, 4 annotations, 2 categories" in capsys.readouterr().out
    data = json.loads(out.read_text())
    assert data["categories"] == [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}]
    assert [im["file_name"] for im in data["images"]] == ["a.jpg", "b.png"]
    triangle, rectangle, pieces, circle = data["annotations"]
    assert triangle["segmentation"] == [[10, 10, 30, 10, 20, 25]]
    assert triangle["bbox"] == [10, 10, 20, 15] and triangle["category_id"] == 1
    assert rectangle["bbox"] == [5, 2, 35, 28] and rectangle["category_id"] == 2
    assert rectangle["segmentation"] == [[5, 2, 40, 2, 40, 30, 5, 30]]
    assert len(pieces["segmentation"]) == 2 and pieces["bbox"] == [0, 0, 30, 30]
    assert circle["bbox"] == pytest.approx([15, 15, 20, 20], abs=1e-9)
    assert circle["area"] == pytest.approx(math.pi * 100, rel=0.05)

    dataset = CocoDataset(out, labelme_dir / "images",
                          pipeline=[dict(type="LoadImage"), dict(type="LoadAnnotations",
                                    with_mask=True), dict(type="PackDetInputs")])
    _, sample = dataset[1]
    assert sample.gt.masks.shape == (2, 50, 50)
    assert int(sample.gt.masks[0].sum()) == pieces["area"]


def test_class_names_order_and_unknown_labels(labelme_dir):
    data = labelme_to_coco(labelme_dir / "labels", img_dir=labelme_dir / "images",
                           class_names=["dog", "cat"])
    assert [a["category_id"] for a in data["annotations"]] == [2, 1, 2, 1]
    with pytest.raises(DatasetError, match=r"a\.json: unknown class 'cat' \(closest: 'cats'\)"):
        labelme_to_coco(labelme_dir / "labels", class_names=["cats", "dog"])


def test_bad_shapes_name_the_file(tmp_path):
    write_labelme(tmp_path / "j", "x", "x.jpg", [shape("cat", [[1, 1], [2, 2]])])
    with pytest.raises(DatasetError, match=r"x\.json: shape #0 \('cat'\): a polygon needs"):
        labelme_to_coco(tmp_path / "j")
    write_labelme(tmp_path / "j", "x", "x.jpg", [shape("cat", [[1, 1], [1, 5]], "rectangle")])
    with pytest.raises(DatasetError, match="zero width or height"):
        labelme_to_coco(tmp_path / "j")
    (tmp_path / "j" / "x.json").write_text("{}")
    with pytest.raises(DatasetError, match=r"x\.json: not a LabelMe file"):
        labelme_to_coco(tmp_path / "j")
