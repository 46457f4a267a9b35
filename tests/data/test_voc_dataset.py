"""VOCDataset on the real VOC folders (checked against their COCO versions) and tiny ones."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
import torch
from PIL import Image

from detbox.data import VOCDataset, build_dataset
from detbox.data.skipping import UnreadableImage
from detbox.errors import DatasetError
from detbox.evaluation import CocoMetric
from detbox.structures import DetSample, Instances
from tests.conftest import shared_dataset


def write_voc(root: Path, images: dict, split: list[str] | None = None,
              with_size: bool = True) -> Path:
    """A VOC folder; ``images[id] = (width, height, [(name, xmin, ymin, xmax, ymax, diff)])``."""
    (root / "Annotations").mkdir(parents=True, exist_ok=True)
    (root / "JPEGImages").mkdir(exist_ok=True)
    for image_id, (width, height, objects) in images.items():
        image = Image.new("RGB", (width, height), (90, 120, 30))
        image.save(root / "JPEGImages" / f"{image_id}.jpg")
        size = (f"<size><width>{width}</width><height>{height}</height><depth>3</depth></size>"
                if with_size else "")
        body = "".join(
            f"<object><name>{n}</name><difficult>{d}</difficult><bndbox><xmin>{x1}</xmin>"
            f"<ymin>{y1}</ymin><xmax>{x2}</xmax><ymax>{y2}</ymax></bndbox></object>"
            for n, x1, y1, x2, y2, d in objects)
        (root / "Annotations" / f"{image_id}.xml").write_text(
            f"<annotation><filename>{image_id}.jpg</filename>{size}{body}</annotation>")
    if split is not None:
        (root / "ImageSets" / "Main").mkdir(parents=True, exist_ok=True)
        (root / "ImageSets" / "Main" / "val.txt").write_text("\n".join(split) + "\n")
    return root


TINY = {
    "a": (40, 30, [("cat", 1, 1, 10, 10, 0), ("dog", 5, 6, 20, 25, 0), ("bird", 2, 2, 8, 8, 1)]),
    "b": (32, 32, [("dog", 3, 3, 12, 30, 0)]),
    "c": (30, 20, [("cat", 10, 4, 20, 15, 1)]),
}


def coco_boxes_by_stem(ann_file: Path) -> dict[str, list[tuple[str, list[float]]]]:
    data = json.loads(ann_file.read_text())
    names = {c["id"]: c["name"] for c in data["categories"]}
    stems = {im["id"]: Path(im["file_name"]).stem for im in data["images"]}
    out: dict[str, list] = {stem: [] for stem in stems.values()}
    for ann in data["annotations"]:
        x, y, w, h = ann["bbox"]
        out[stems[ann["image_id"]]].append((names[ann["category_id"]], [x, y, x + w, y + h]))
    return out


def voc_boxes_by_stem(dataset: VOCDataset) -> dict[str, list[tuple[str, list[float]]]]:
    out = {}
    for i in range(len(dataset)):
        ann = dataset.get_record(i)["ann"]
        out[Path(dataset.get_record(i)["file_name"]).stem] = [
            (dataset.class_names[label], box.tolist())
            for box, label in zip(ann["boxes"], ann["labels"])]
    return out


@pytest.mark.parametrize("name, split", [("pennfudan", "ImageSets/Main/val.txt"),
                                         ("microcontroller", None)])
def test_real_voc_folders_match_their_coco_version(name, split):
    voc_root = shared_dataset(f"{name}_voc")
    coco = coco_boxes_by_stem(shared_dataset(name) / "annotations" / "instances_val.json")
    dataset = VOCDataset(voc_root, split_file=split)
    voc = voc_boxes_by_stem(dataset)
    assert set(voc) == set(coco)
    for stem, objects in voc.items():
        assert sorted(objects) == sorted(coco[stem]), stem
    expected_classes = sorted({n for objs in coco.values() for n, _ in objs})
    assert dataset.class_names == expected_classes
    assert sum(len(v) for v in voc.values()) == {"pennfudan": 77, "microcontroller": 32}[name]


def test_pennfudan_voc_sample_and_coco_index():
    dataset = VOCDataset(shared_dataset("pennfudan_voc"), split_file="ImageSets/Main/val.txt")
    image, sample = dataset[0]
    assert image.shape[0] == 3 and tuple(image.shape[1:]) == sample.ori_shape
    assert sample.image_id == 1 and sample.file_name == "FudanPed00001.jpg"
    assert sample.gt.boxes.tolist() == [[159, 181, 302, 431], [419, 170, 535, 486]]
    assert dataset.cat_ids == [1] and len(dataset.aspect_ratios) == 30
    assert len(dataset.coco.getAnnIds()) == 77

    metric = CocoMetric(coco_gt=dataset.coco, cat_ids=dataset.cat_ids)
    samples, predictions = [], []
    for i in range(len(dataset)):
        ann = dataset.get_record(i)["ann"]
        samples.append(DetSample(image_id=i + 1, file_name="", ori_shape=(1, 1), img_shape=(1, 1)))
        predictions.append(Instances(boxes=torch.tensor(ann["boxes"]),
                                     labels=torch.tensor(ann["labels"]),
                                     scores=torch.ones(len(ann["boxes"]))))
    metric.process(samples, predictions)
    assert metric.evaluate()["bbox_mAP"] == pytest.approx(1.0)


def test_boxes_classes_and_difficult_objects(tmp_path):
    root = write_voc(tmp_path / "voc", TINY, split=["b", "a", "c"])
    dataset = VOCDataset(root, split_file="ImageSets/Main/val.txt")
    assert dataset.class_names == ["bird", "cat", "dog"]
    assert dataset.image_ids == [1, 2, 3] and dataset.ann_file.endswith("val.txt")
    record = dataset.get_record(1)  # image "a", second in the split file
    assert record["file_name"] == "a.jpg" and record["image_id"] == 2
    assert record["ann"]["boxes"].tolist() == [[0, 0, 10, 10], [4, 5, 20, 25]]
    assert record["ann"]["labels"].tolist() == [1, 2]
    assert record["ann"]["ignored_boxes"].tolist() == [[1, 1, 8, 8]]
    crowd = [a for a in dataset.coco.dataset["annotations"] if a["iscrowd"]]
    assert len(crowd) == 2 and {a["category_id"] for a in crowd} == {1, 2}
    only_difficult = VOCDataset(root, split_file="ImageSets/Main/val.txt", filter_empty=True)
    assert [r["file_name"] for r in map(only_difficult.get_record, range(2))] == ["b.jpg", "a.jpg"]


def test_class_subset_is_remapped_and_others_dropped(tmp_path):
    root = write_voc(tmp_path / "voc", TINY)
    with pytest.warns(UserWarning, match=r"bird \(1\)"):
        dataset = VOCDataset(root, class_names=["dog", "cat"])
    assert dataset.class_names == ["dog", "cat"] and dataset.cat_ids == [1, 2]
    record = dataset.get_record(0)
    assert record["ann"]["labels"].tolist() == [1, 0]
    assert record["ann"]["ignored_boxes"].shape == (0, 4)  # the difficult bird is not kept
    assert [c["name"] for c in dataset.coco.dataset["categories"]] == ["dog", "cat"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        everything = VOCDataset(root, class_names=["dog", "cat", "bird", "horse"])
    assert everything.num_classes == 4  # a listed class no XML uses is fine (e.g. a small split)


def test_config_build_label_map_and_size_from_image(tmp_path):
    root = write_voc(tmp_path / "voc", TINY, with_size=False)
    dataset = build_dataset(dict(type="VOCDataset", data_root=str(root),
                                 label_map_out=str(tmp_path / "work")))
    assert dataset.get_record(0)["width"] == 40 and dataset.aspect_ratios[2] == 1.5
    label_map = json.loads((tmp_path / "work" / "label_map.json").read_text())
    assert label_map["classes"][2] == {"label": 2, "category_id": 3, "name": "dog"}
    assert dataset.write_label_map(tmp_path / "m.json").name == "m.json"


def _broken(tmp_path: Path, xml: str) -> Path:
    root = write_voc(tmp_path / "voc", {"a": TINY["a"]})
    (root / "Annotations" / "a.xml").write_text(xml)
    return root


@pytest.mark.parametrize("xml, message", [
    ("<annotation><object>", "malformed XML"),
    ("<annotation><object><name>cat</name></object></annotation>", "has no <bndbox>"),
    ("<annotation><object><bndbox><xmin>1</xmin></bndbox></object></annotation>", "no <name>"),
    ("<annotation><object><name>cat</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>5</xmax>"
     "</bndbox></object></annotation>", "has no <ymax>"),
    ("<annotation><object><name>cat</name><bndbox><xmin>a</xmin><ymin>1</ymin><xmax>5</xmax>"
     "<ymax>5</ymax></bndbox></object></annotation>", "<xmin> is 'a', not a number"),
    ("<annotation><object><name>cat</name><bndbox><xmin>9</xmin><ymin>1</ymin><xmax>5</xmax>"
     "<ymax>5</ymax></bndbox></object></annotation>", "xmax < xmin"),
    ("<doc/>", "not <annotation>"),
])
def test_broken_xml_errors_name_the_file(tmp_path, xml, message):
    root = _broken(tmp_path, xml)
    with pytest.raises(DatasetError, match=message) as error:
        VOCDataset(root)
    assert str(root / "Annotations" / "a.xml") in str(error.value)


def test_class_name_typos_name_the_file_and_the_closest_class(tmp_path):
    images = {**TINY, "d": (32, 32, [("Dog", 3, 3, 12, 30, 0)])}
    root = write_voc(tmp_path / "voc", images)
    with pytest.raises(DatasetError, match=r"d\.xml: unknown class name 'Dog'.*mean 'dog'"):
        VOCDataset(root)
    with pytest.raises(DatasetError, match=r"d\.xml: unknown class name 'Dog'.*mean 'dog'"):
        VOCDataset(root, class_names=["cat", "dog", "bird"])
    with pytest.raises(DatasetError, match=r"a\.xml: has class 'bird'.*class_names has 'brid'"):
        VOCDataset(root, class_names=["cat", "dog", "brid", "Dog"])


def test_missing_files_are_named(tmp_path):
    root = write_voc(tmp_path / "voc", TINY, split=["a", "zzz"])
    with pytest.raises(DatasetError, match=r"zzz\.xml: annotation file not found.*val\.txt"):
        VOCDataset(root, split_file="ImageSets/Main/val.txt")
    with pytest.raises(DatasetError, match="split file not found"):
        VOCDataset(root, split_file="ImageSets/Main/train.txt")
    (root / "JPEGImages" / "b.jpg").unlink()
    with pytest.raises(DatasetError, match=r"b\.xml: its image is not in"):
        VOCDataset(root)


def test_training_voc_dataset_skips_an_unreadable_image(tmp_path):
    import shutil

    root = shared_dataset("pennfudan_voc")
    copy = tmp_path / "voc"
    shutil.copytree(root, copy)
    ids = (copy / "ImageSets/Main/val.txt").read_text().split()[:3]
    (copy / "three.txt").write_text("\n".join(ids) + "\n")
    broken = copy / "JPEGImages" / f"{ids[1]}.jpg"
    broken.write_bytes(broken.read_bytes()[:200])  # truncated

    dataset = VOCDataset(copy, split_file="three.txt")
    _, sample = dataset[1]
    assert sample.file_name != f"{ids[1]}.jpg"
    assert any(str(broken) in path for path in sample.extra["skipped_images"])
    strict = VOCDataset(copy, split_file="three.txt", max_skipped_images=0)
    with pytest.raises(DatasetError, match=ids[1]):
        strict[1]
    evaluation = VOCDataset(copy, split_file="three.txt", test_mode=True)
    unreadable = evaluation[1]  # evaluation leaves it out instead of drawing another image
    assert isinstance(unreadable, UnreadableImage) and ids[1] in unreadable.path
