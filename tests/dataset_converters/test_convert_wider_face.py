"""WIDER FACE box list -> VOC XML, loaded by WIDERFaceDataset, on a tiny official layout."""

from __future__ import annotations

import logging
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from wider_face_layout import EVENTS, write_gt_txt, write_wider_face

from detbox.cli.main import main
from detbox.data import WIDERFaceDataset
from detbox.data.skipping import UnreadableFiles
from detbox.dataset_converters.wider_face import read_wider_face_txt, wider_face_to_voc
from detbox.errors import DatasetError


def convert(root):
    return wider_face_to_voc(root / "wider_face_split" / "wider_face_val_bbx_gt.txt",
                             root / "WIDER_val" / "images", root / "WIDER_val" / "Annotations",
                             root / "val.txt")


def test_box_list_is_read_with_the_line_of_zeros_of_empty_images(tmp_path):
    images = read_wider_face_txt(write_gt_txt(tmp_path / "gt.txt"))
    assert [name for name, _ in images] == [f"{e}/{n}.jpg" for e, ims in EVENTS.items()
                                            for n, _, _ in ims]
    assert [len(faces) for _, faces in images] == [3, 0, 2]
    assert images[0][1][2] == [60, 40, 6, 6, 2, 0, 0, 1, 0, 0]


@pytest.mark.parametrize("text, match", [
    ("a.jpg\nthree\n", r"gt.txt:2: expected the number of faces"),
    ("a.jpg\n2\n1 2 3 4 0 0 0 0 0 0\n", "ends inside the face list"),
    ("a.jpg\n1\n1 2 3 4\n", r"gt.txt:3: expected 'x y w h' and 6 attributes"),
])
def test_a_malformed_box_list_names_the_line(tmp_path, text, match):
    (tmp_path / "gt.txt").write_text(text)
    with pytest.raises(DatasetError, match=match):
        read_wider_face_txt(tmp_path / "gt.txt")


def test_xml_files_hold_folder_size_boxes_and_invalid_faces_as_difficult(tmp_path):
    root = write_wider_face(tmp_path / "WIDERFace", with_mat=False)
    counts = convert(root)
    assert counts == {"images": 3, "faces": 4, "ignored": 1, "skipped": 0}
    assert (root / "val.txt").read_text().split() == [
        "0_Parade_marchingband_1_5", "0_Parade_Parade_0_12", "1_Handshaking_Handshaking_1_3"]
    xml = ET.parse(root / "WIDER_val" / "Annotations" / "0_Parade_marchingband_1_5.xml")
    assert xml.findtext("folder") == "0--Parade"
    assert xml.findtext("filename") == "0_Parade_marchingband_1_5.jpg"
    assert (xml.findtext("size/width"), xml.findtext("size/height")) == ("80", "60")
    objects = xml.findall("object")
    assert [[int(o.findtext(f"bndbox/{t}")) for t in ("xmin", "ymin", "xmax", "ymax")]
            for o in objects] == [[6, 6, 25, 25], [41, 11, 52, 24], [61, 41, 66, 46]]
    assert [o.findtext("difficult") for o in objects] == ["0", "0", "1"]
    assert objects[1].findtext("occlusion") == "1" and objects[2].findtext("blur") == "2"
    handshaking = ET.parse(root / "WIDER_val" / "Annotations" / "1_Handshaking_Handshaking_1_3.xml")
    assert len(handshaking.findall("object")) == 1  # the zero-width face is left out


def test_dataset_loads_the_converted_folder(tmp_path):
    root = write_wider_face(tmp_path / "WIDERFace", with_mat=False)
    convert(root)
    dataset = WIDERFaceDataset(root, "val.txt", img_subdir="WIDER_val/images",
                               ann_subdir="WIDER_val/Annotations", test_mode=True)
    assert len(dataset) == 3 and dataset.class_names == ["face"]
    record = dataset.get_record(0)
    assert record["file_name"] == "0--Parade/0_Parade_marchingband_1_5.jpg"
    np.testing.assert_array_equal(record["ann"]["boxes"], [[5, 5, 25, 25], [40, 10, 52, 24]])
    np.testing.assert_array_equal(record["ann"]["ignored_boxes"], [[60, 40, 66, 46]])
    assert record["ann"]["labels"].tolist() == [0, 0]
    image, sample = dataset[2]
    assert tuple(image.shape) == (3, 56, 72) and sample.file_name.startswith("1--Handshaking/")

    train = WIDERFaceDataset(root, "val.txt", img_subdir="WIDER_val/images",
                             ann_subdir="WIDER_val/Annotations", filter_empty=True)
    assert len(train) == 2  # the image without faces is left out for training
    _, sample = train[0]
    assert len(sample.gt) == 2 and len(sample.ignored_boxes) == 1


def test_dataset_errors_name_the_file(tmp_path):
    root = write_wider_face(tmp_path / "WIDERFace", with_mat=False)
    convert(root)
    with pytest.raises(DatasetError, match="check img_subdir"):
        WIDERFaceDataset(root, "val.txt", img_subdir="WIDER_val",
                         ann_subdir="WIDER_val/Annotations")
    xml = root / "WIDER_val" / "Annotations" / "0_Parade_Parade_0_12.xml"
    xml.write_text(xml.read_text().replace("</size>", "</size><object><name>head</name>"
                                           "<bndbox><xmin>1</xmin><ymin>1</ymin><xmax>4</xmax>"
                                           "<ymax>4</ymax></bndbox></object>"))
    with pytest.raises(DatasetError, match=r"_0_12.xml: objects of class \['head'\]"):
        WIDERFaceDataset(root, "val.txt", img_subdir="WIDER_val/images",
                         ann_subdir="WIDER_val/Annotations")


def test_cli_converts_and_reports_a_corrupt_image_it_skips(tmp_path, capsys, caplog):
    root = write_wider_face(tmp_path / "WIDERFace", with_mat=False)
    (root / "WIDER_val" / "images" / "0--Parade" / "0_Parade_Parade_0_12.jpg").write_bytes(b"xx")
    with caplog.at_level(logging.WARNING, logger="detbox.data"):
        assert main(["convert", "widerface",
                     str(root / "wider_face_split" / "wider_face_val_bbx_gt.txt"),
                     str(root / "WIDER_val" / "images"), str(root / "WIDER_val" / "Annotations"),
                     str(root / "val.txt")]) == 0
    out = capsys.readouterr().out
    assert "wrote 2 XML files (4 faces, 1 invalid ones marked difficult)" in out
    assert "1 of 3 images could not be read: 0_Parade_Parade_0_12.jpg" in out
    assert "0_Parade_Parade_0_12.jpg" in caplog.text
    assert (root / "val.txt").read_text().split() == [
        "0_Parade_marchingband_1_5", "1_Handshaking_Handshaking_1_3"]
    skipped = UnreadableFiles("images")
    wider_face_to_voc(root / "wider_face_split" / "wider_face_val_bbx_gt.txt",
                      root / "WIDER_val" / "images", tmp_path / "xml", tmp_path / "val.txt",
                      skipped=skipped)
    assert [path.endswith("0_Parade_Parade_0_12.jpg") for path, _ in skipped.entries] == [True]


def test_the_recipe_datasets_load_the_converted_folder(tmp_path):
    """configs/_base_/datasets/wider_face.py, pointed at the tiny folder: training images fit
    640x640 and the validation set evaluates with the official ground truth."""
    from detbox.apis.evaluate import build_evaluator
    from detbox.config import load_config
    from detbox.data.build import build_dataset
    from tests.conftest import REPO_ROOT

    pytest.importorskip("scipy", reason="the WIDER FACE .mat ground truth is read with scipy")
    root = write_wider_face(tmp_path / "WIDERFace")
    convert(root)
    (root / "train.txt").write_text((root / "val.txt").read_text())
    (root / "WIDER_train").symlink_to(root / "WIDER_val")
    cfg = load_config(REPO_ROOT / "configs" / "_base_" / "datasets" / "wider_face.py")
    datasets = {}
    for split in ("train", "val"):
        dataset_cfg = cfg[f"{split}_dataloader"]["dataset"].to_dict()
        dataset_cfg["data_root"] = str(root)
        if split == "val":
            dataset_cfg["eval_gt_dir"] = str(root / "eval_tools" / "ground_truth")
        datasets[split] = build_dataset(dataset_cfg)
    assert len(datasets["train"]) == 2 and len(datasets["val"]) == 3
    image, sample = datasets["train"][0]
    assert max(image.shape[1:]) == 640 and len(sample.gt) == 2
    evaluator = build_evaluator(datasets["val"], cfg["evaluation"]["metric"])
    assert type(evaluator).__name__ == "WIDERFaceMetric"
