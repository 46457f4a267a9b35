"""``detbox check-dataset``: reads a config or an annotation file, exits 1 only on errors."""

import json
import shutil
from pathlib import Path

from detbox.cli.main import main
from tests.conftest import shared_dataset


def _copy_pennfudan(root: Path, num_images: int = 3) -> Path:
    """``root/annotations/ann.json`` + ``root/images`` with the first val images."""
    source = shared_dataset("pennfudan")
    data = json.loads((source / "annotations" / "instances_val.json").read_text())
    data["images"] = sorted(data["images"], key=lambda im: im["id"])[:num_images]
    ids = {im["id"] for im in data["images"]}
    data["annotations"] = [a for a in data["annotations"] if a["image_id"] in ids]
    (root / "images").mkdir(parents=True)
    (root / "annotations").mkdir()
    for image in data["images"]:
        shutil.copy(source / "images" / image["file_name"], root / "images")
    ann_file = root / "annotations" / "ann.json"
    ann_file.write_text(json.dumps(data))
    return ann_file


def test_config_with_a_wrong_class_name_fails_with_the_closest_match(tmp_path, capsys):
    ann_file = _copy_pennfudan(tmp_path / "data")
    img_dir = tmp_path / "data" / "images"
    config = tmp_path / "cfg.py"
    config.write_text(
        f"train_dataloader = dict(dataset=dict(type='CocoDataset', ann_file='{ann_file}', "
        f"img_dir='{img_dir}', class_names=['persn']))\n"
        f"val_dataloader = dict(dataset=dict(type='CocoDataset', ann_file='{ann_file}', "
        f"img_dir='{img_dir}', test_mode=True))\n"
    )
    assert main(["check-dataset", str(config)]) == 1
    out = capsys.readouterr().out
    assert out.count(f"== {ann_file}") == 1 and "[train, val]" in out  # checked once
    assert "ERROR class_name_missing (1)" in out and "closest: 'person'" in out
    assert "1 errors, 0 warnings in 1 annotation file(s)" in out


def test_annotation_file_with_warnings_only_passes(tmp_path, capsys):
    ann_file = _copy_pennfudan(tmp_path)
    data = json.loads(ann_file.read_text())
    data["categories"].append({"id": 5, "name": "dog"})
    ann_file.write_text(json.dumps(data))
    report = tmp_path / "report.json"
    assert main(["check-dataset", str(ann_file), "--json-out", str(report)]) == 0
    out = capsys.readouterr().out
    assert "(guessed; --img-dir to choose)" in out and "3 image files read" in out
    assert "WARNING category_unused (1)" in out
    saved = json.loads(report.read_text())
    assert saved["num_errors"] == 0 and saved["num_warnings"] == 1
    (dataset,) = saved["datasets"]
    assert [row["name"] for row in dataset["class_table"]] == ["person", "dog"]
    assert dataset["problems"][0]["where"] == "category 'dog' (id 5)"


def test_broken_image_and_box_fail_and_are_listed(tmp_path, capsys):
    ann_file = _copy_pennfudan(tmp_path)
    data = json.loads(ann_file.read_text())
    broken = tmp_path / "images" / data["images"][0]["file_name"]
    broken.write_bytes(broken.read_bytes()[:1000])
    for ann in data["annotations"]:
        ann["bbox"][2] = 0
    count = len(data["annotations"])
    ann_file.write_text(json.dumps(data))
    assert main(["check-dataset", str(ann_file), "--img-dir", str(tmp_path / "images"),
                 "--max-show", "2"]) == 1
    out = capsys.readouterr().out
    assert "ERROR image_truncated (1)" in out and data["images"][0]["file_name"] in out
    assert f"ERROR bbox_empty ({count})" in out and f"... and {count - 2} more" in out
    assert "(guessed" not in out


def test_missing_source_is_a_one_line_error(tmp_path, capsys):
    assert main(["check-dataset", str(tmp_path / "nothing.json")]) == 2
    assert "no such config or annotation file" in capsys.readouterr().err
