"""The dataset checker finds every injected defect of a real dataset, and nothing in clean data."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from detbox.data.dataset_report import check_coco_dataset

NUM_IMAGES = 6


def _subset(pennfudan: Path, root: Path) -> tuple[dict, Path]:
    """The first images of the val split with their annotations, copied to ``root``."""
    data = json.loads((pennfudan / "annotations" / "instances_val.json").read_text())
    images = sorted(data["images"], key=lambda im: im["id"])[:NUM_IMAGES]
    ids = {im["id"] for im in images}
    img_dir = root / "images"
    img_dir.mkdir()
    for image in images:
        shutil.copy(pennfudan / "images" / image["file_name"], img_dir / image["file_name"])
    subset = {"images": images, "categories": data["categories"],
              "annotations": [a for a in data["annotations"] if a["image_id"] in ids]}
    return subset, img_dir


def _inject_defects(data: dict, img_dir: Path) -> dict[str, str]:
    """Break the copy in many ways; returns ``code -> text expected in the problem's where``."""
    images, anns = data["images"], data["annotations"]
    first = anns[0]
    on = {im["id"]: im for im in images}

    def ann(ann_id: int, image: dict, **changes) -> dict:
        entry = {**copy.deepcopy(first), "id": ann_id, "image_id": image["id"], **changes}
        anns.append(entry)
        return entry

    data_bytes = (img_dir / images[0]["file_name"]).read_bytes()
    (img_dir / images[0]["file_name"]).write_bytes(data_bytes[: len(data_bytes) // 3])
    (img_dir / images[1]["file_name"]).write_bytes(b"this is not a picture")
    images[2]["width"] += 10
    shutil.copy(img_dir / images[3]["file_name"], img_dir / "copy.png")
    images.append({**images[3], "file_name": "copy.png"})  # same id as images[3]
    images.append({**images[4], "id": 9002})  # same file name as images[4]
    images.append({"id": 9001, "file_name": "ghost.png", "width": 50, "height": 40})
    rotated = np.zeros((30, 60, 3), dtype=np.uint8)
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(rotated).save(img_dir / "rotated.jpg", exif=exif)
    images.append({"id": 9003, "file_name": "rotated.jpg", "width": 60, "height": 30})

    target = on[anns[0]["image_id"]]
    width = target["width"]
    ann(5001, target, bbox=[width + 5, 10, 20, 20])
    ann(5002, target, bbox=[10, 10, 0, 15])
    ann(5003, target, bbox=[float("nan"), 10, 5, 5])
    ann(5004, target, bbox=[1, 2, 3])
    ann(5005, target, segmentation=[[1, 1, 5, 1]])
    bad_rle = copy.deepcopy(first["segmentation"])
    bad_rle["size"] = [bad_rle["size"][0] + 1, bad_rle["size"][1]]
    ann(5006, target, segmentation=bad_rle)
    ann(5007, target, category_id=77)
    ann(5008, {"id": 12345})
    ann(first["id"], target)  # duplicate annotation id
    ann(5009, target, segmentation=[[1, 1, 5, 1, 5]])
    del ann(5010, target)["bbox"]
    del ann(5011, target)["area"]
    ann(5012, target, bbox=[width - 10, 10, 30, 20])
    data["categories"].append({"id": 2, "name": "bicycle"})
    return {
        "image_truncated": images[0]["file_name"],
        "image_unreadable": images[1]["file_name"],
        "image_size_mismatch": images[2]["file_name"],
        "duplicate_image_id": f"image id {images[3]['id']}",
        "duplicate_file_name": images[4]["file_name"],
        "image_missing": "ghost.png",
        "bbox_outside_image": "annotation 5001",
        "bbox_empty": "annotation 5002",
        "bbox_not_finite": "annotation 5003",
        "bbox_malformed": "annotation 5004",
        "polygon_too_few_points": "annotation 5005",
        "rle_size_mismatch": "annotation 5006",
        "unknown_category": "annotation 5007",
        "unknown_image": "annotation 5008",
        "duplicate_annotation_id": f"annotation {first['id']}",
        "polygon_malformed": "annotation 5009",
        "missing_key": "annotations[",
        "class_name_missing": "persn",
        # warnings
        "area_missing": "annotation 5011",
        "bbox_partly_outside": "annotation 5012",
        "images_without_annotations": "images",
        "category_unused": "bicycle",
    }


@pytest.fixture
def broken(pennfudan: Path, tmp_path: Path) -> tuple[Path, Path, dict[str, str]]:
    data, img_dir = _subset(pennfudan, tmp_path)
    expected = _inject_defects(data, img_dir)
    ann_file = tmp_path / "broken.json"
    ann_file.write_text(json.dumps(data))
    return ann_file, img_dir, expected


def test_every_injected_defect_is_reported(broken) -> None:
    ann_file, img_dir, expected = broken
    report = check_coco_dataset(ann_file, img_dir, class_names=["persn"])
    found = report.codes()
    assert len(expected) >= 12
    missed = [code for code in expected if code not in found]
    assert not missed, f"not reported: {missed}"
    for code, where in expected.items():
        wheres = [p.where for p in report.problems if p.code == code]
        assert any(where in w for w in wheres), (code, where, wheres)
        assert all(p.fix for p in report.problems if p.code == code)
    severities = {p.code: p.severity for p in report.problems}
    for code in ("area_missing", "bbox_partly_outside", "images_without_annotations",
                 "category_unused"):
        assert severities[code] == "warning", code
    assert severities["image_truncated"] == "error" and severities["unknown_category"] == "error"


def test_problem_details_name_sizes_matches_and_exif(broken) -> None:
    ann_file, img_dir, _ = broken
    report = check_coco_dataset(ann_file, img_dir, class_names=["persn"])
    (name_problem,) = [p for p in report.problems if p.code == "class_name_missing"]
    assert "closest: 'person'" in name_problem.message
    rotated = [p for p in report.problems if "rotated.jpg" in p.where]
    assert len(rotated) == 1 and "EXIF orientation" in rotated[0].fix
    assert "image is 30x60, the JSON says 60x30" in rotated[0].message
    (empty,) = [p for p in report.problems if p.code == "images_without_annotations"]
    # ghost.png, rotated.jpg and the second entry of a duplicated file name (copy.png shares
    # an annotated image's id, so it has annotations)
    assert empty.message.startswith("3 of 10 images") and "ghost.png" in empty.message
    assert report.class_table[0]["name"] == "person" and report.class_table[1]["instances"] == 0
    assert report.images_read == 6  # 10 entries, 9 distinct files: 1 missing, 2 undecodable


def test_clean_real_data_raises_no_alarm(pennfudan: Path) -> None:
    report = check_coco_dataset(pennfudan / "annotations" / "instances_val.json",
                                pennfudan / "images", class_names=["person"])
    assert report.problems == []
    assert report.num_images == 30 and report.images_read == 30
    assert report.class_table == [{"id": 1, "name": "person", "instances": 77, "crowd": 0,
                                   "images": 30}]


def test_unreadable_annotation_file_is_one_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{ not json")
    report = check_coco_dataset(bad)
    assert [p.code for p in report.problems] == ["annotation_file"]
    assert "not valid JSON" in report.problems[0].message
    report = check_coco_dataset(tmp_path / "absent.json")
    assert "not found" in report.problems[0].message
