"""A user mistake ends the command with one clear line naming the file or key, not a traceback."""

import json
from pathlib import Path

from detbox.cli.main import main
from tests.conftest import REPO_ROOT

DEMO = str(REPO_ROOT / "configs/demo/retinanet_r18_fpn_synthetic.py")


def write_coco(root: Path, annotations: list[dict], categories=None, images=True) -> Path:
    from PIL import Image

    (root / "images").mkdir(parents=True)
    if images:
        Image.new("RGB", (40, 30)).save(root / "images" / "a.png")
    data = {
        "images": [{"id": 1, "file_name": "a.png", "width": 40, "height": 30}],
        "annotations": annotations,
        "categories": categories or [{"id": 1, "name": "thing"}],
    }
    (root / "ann.json").write_text(json.dumps(data))
    return root


def train_on(root: Path, tmp_path: Path, extra=()) -> int:
    dataset = (f"dict(type='CocoDataset', ann_file='{root}/ann.json', img_dir='{root}/images', "
               "pipeline=train_pipeline)")
    return main(["train", DEMO, "--work-dir", str(tmp_path / "work"), "--cfg-options",
                 f"train_dataloader.dataset={dataset}", "val_dataloader=None",
                 "train_dataloader.num_workers=0", "train_cfg.max_epochs=1", *extra])


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert "Traceback" not in err[0]
    return err[0]


def box(bbox, category_id=1, ann_id=7):
    return {"id": ann_id, "image_id": 1, "category_id": category_id, "bbox": bbox,
            "area": 1.0, "iscrowd": 0}


def test_typo_in_a_model_key(tmp_path, capsys):
    code = main(["train", DEMO, "--work-dir", str(tmp_path), "--cfg-options",
                 "model.bbox_head.stacked_conv=2"])
    line = one_error_line(capsys)
    assert code == 2
    assert "'stacked_conv'" in line and "RetinaHead" in line and "'stacked_convs'" in line


def test_typo_in_a_top_level_key(tmp_path, capsys):
    config = tmp_path / "cfg.py"
    bases = [str(REPO_ROOT / "configs/_base_" / p)
             for p in ("models/retinanet_r50_fpn.py", "datasets/synthetic_detection.py")]
    config.write_text(f"_base_ = {bases!r}\noptimiser = dict(type='SGD', lr=0.1)\n")
    assert main(["train", str(config), "--work-dir", str(tmp_path / "w")]) == 2
    line = one_error_line(capsys)
    assert str(config) in line and "'optimiser'" in line and "'optimizer'" in line


def test_missing_image_file(tmp_path, capsys):
    root = write_coco(tmp_path / "data", [box([1, 1, 10, 10])], images=False)
    assert train_on(root, tmp_path) == 2
    line = one_error_line(capsys)
    assert "a.png" in line and "img_dir" in line


def test_category_id_absent_from_categories(tmp_path, capsys):
    root = write_coco(tmp_path / "data", [box([1, 1, 10, 10], category_id=9)])
    assert train_on(root, tmp_path) == 2
    line = one_error_line(capsys)
    assert "ann.json" in line and "9" in line and "categor" in line


def test_box_with_negative_width(tmp_path, capsys):
    root = write_coco(tmp_path / "data", [box([5, 1, -3, 10], ann_id=42)])
    assert train_on(root, tmp_path) == 2
    line = one_error_line(capsys)
    assert "ann.json" in line and "42" in line and "width" in line


def test_num_classes_that_contradicts_the_data(tmp_path, capsys):
    root = write_coco(tmp_path / "data", [box([1, 1, 10, 10])])
    assert train_on(root, tmp_path, ["model.bbox_head.num_classes=80"]) == 2
    line = one_error_line(capsys)
    assert "model.bbox_head.num_classes = 80" in line and "1 categories" in line
    assert "ann.json" in line
