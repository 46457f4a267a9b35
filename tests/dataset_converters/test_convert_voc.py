"""voc2coco on the real VOC folders, checked against their COCO versions, and on a tiny one."""

from __future__ import annotations

import json

import pytest
from convert_helpers import boxes_by_image, write_images

from detbox.cli.main import main
from detbox.data import CocoDataset, VOCDataset
from detbox.dataset_converters import voc_to_coco
from detbox.errors import DatasetError
from tests.conftest import shared_dataset


@pytest.mark.parametrize("name, split", [("pennfudan", "ImageSets/Main/val.txt"),
                                         ("microcontroller", None)])
def test_real_voc_converts_to_the_published_coco_boxes(tmp_path, name, split):
    voc_root = shared_dataset(f"{name}_voc")
    reference = boxes_by_image(shared_dataset(name) / "annotations" / "instances_val.json")
    out = tmp_path / "coco.json"
    data = voc_to_coco(voc_root, out, split_file=split)
    assert boxes_by_image(out) == reference == boxes_by_image(data)

    converted = CocoDataset(out, voc_root / "JPEGImages")
    direct = VOCDataset(voc_root, split_file=split)
    assert converted.class_names == direct.class_names and len(converted) == len(direct)
    for i in range(len(direct)):
        a, b = converted.get_record(i), direct.get_record(i)
        assert a["image_id"] == b["image_id"] and a["file_name"] == b["file_name"]
        assert a["ann"]["boxes"].tolist() == b["ann"]["boxes"].tolist()
        assert a["ann"]["labels"].tolist() == b["ann"]["labels"].tolist()


def write_tiny_voc(root):
    (root / "Annotations").mkdir(parents=True)
    write_images(root / "JPEGImages", {"x.jpg": (50, 40), "y.jpg": (30, 30)})
    objects = {"x": [("car", 1, 1, 20, 10, 0), ("person", 5, 5, 9, 30, 1)],
               "y": [("person", 2, 3, 4, 5, 0)]}
    for stem, objs in objects.items():
        body = "".join(f"<object><name>{n}</name><difficult>{d}</difficult><bndbox>"
                       f"<xmin>{a}</xmin><ymin>{b}</ymin><xmax>{c}</xmax><ymax>{e}</ymax>"
                       f"</bndbox></object>" for n, a, b, c, e, d in objs)
        (root / "Annotations" / f"{stem}.xml").write_text(
            f"<annotation><filename>{stem}.jpg</filename>{body}</annotation>")
    return root


def test_difficult_objects_become_crowd_and_the_cli_writes_the_file(tmp_path, capsys):
    root = write_tiny_voc(tmp_path / "voc")
    out = tmp_path / "out" / "coco.json"
    assert main(["convert", "voc2coco", str(root), str(out),
                 "--class-names", "person", "car"]) == 0
    assert "2 images, 3 annotations, 2 categories" in capsys.readouterr().out
    data = json.loads(out.read_text())
    assert data["categories"] == [{"id": 1, "name": "person"}, {"id": 2, "name": "car"}]
    assert boxes_by_image(data) == {
        "x": [("car", [0.0, 0.0, 20.0, 10.0], 0), ("person", [4.0, 4.0, 5.0, 26.0], 1)],
        "y": [("person", [1.0, 2.0, 3.0, 3.0], 0)],
    }
    assert data["images"][0] == {"id": 1, "file_name": "x.jpg", "width": 50, "height": 40}
    assert [p.name for p in out.parent.iterdir()] == ["coco.json"]  # no temporary left behind
    dataset = CocoDataset(out, root / "JPEGImages")
    assert dataset.get_record(0)["ann"]["ignored_boxes"].tolist() == [[4, 4, 9, 30]]


def test_errors_name_the_xml_file(tmp_path, capsys):
    root = write_tiny_voc(tmp_path / "voc")
    (root / "Annotations" / "y.xml").write_text("<annotation><object><name>person</name>")
    with pytest.raises(DatasetError, match=r"y\.xml: malformed XML"):
        voc_to_coco(root)
    assert main(["convert", "voc2coco", str(root), str(tmp_path / "c.json")]) == 2
    assert "y.xml: malformed XML" in capsys.readouterr().err
    assert not (tmp_path / "c.json").exists()
