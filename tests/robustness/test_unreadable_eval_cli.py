"""``detbox test`` and ``detbox browse-dataset`` on a COCO split with a broken image: it is
reported, left out of the predictions and the evaluation, and the rest is scored."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from detbox.cli.main import main
from tests.tiny_detector import CAT_IDS, CLASS_NAMES, TEST_PIPELINE, write_tiny

NUM_IMAGES = 4
BROKEN_ID = 2


def _tiny_coco(root: Path) -> tuple[Path, Path]:
    """Four 64x48 images with one box each; image ``BROKEN_ID`` is a truncated PNG."""
    img_dir = root / "images"
    img_dir.mkdir(parents=True)
    rng = np.random.default_rng(0)
    images, annotations = [], []
    for image_id in range(1, NUM_IMAGES + 1):
        name = f"img{image_id}.png"
        Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)).save(img_dir / name)
        images.append({"id": image_id, "file_name": name, "width": 64, "height": 48})
        annotations.append({"id": image_id, "image_id": image_id, "category_id": 1,
                            "bbox": [8, 8, 20, 16], "area": 320, "iscrowd": 0})
    broken = img_dir / f"img{BROKEN_ID}.png"
    broken.write_bytes(broken.read_bytes()[:200])
    categories = [{"id": i, "name": n} for i, n in zip(CAT_IDS, CLASS_NAMES)]
    ann_file = root / "val.json"
    ann_file.write_text(json.dumps({"images": images, "annotations": annotations,
                                    "categories": categories}))
    return ann_file, img_dir


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> list[str]:
    root = tmp_path_factory.mktemp("coco")
    config, checkpoint = write_tiny(root)
    ann_file, img_dir = _tiny_coco(root)
    cfg = json.loads(config.read_text())
    pipeline = [TEST_PIPELINE[0], {"type": "LoadAnnotations"}, *TEST_PIPELINE[1:]]
    cfg["test_dataloader"] = {
        "batch_size": 2, "num_workers": 0,
        "dataset": {"type": "CocoDataset", "ann_file": str(ann_file), "img_dir": str(img_dir),
                    "pipeline": pipeline, "test_mode": True},
    }
    config.write_text(json.dumps(cfg))
    return [str(config), str(checkpoint)]


def test_test_leaves_the_broken_image_out_and_says_so(setup, tmp_path, capsys):
    out, metrics = tmp_path / "results.json", tmp_path / "metrics.json"
    assert main(["test", *setup, "--out", str(out), "--json-out", str(metrics)]) == 0
    captured = capsys.readouterr()
    assert "evaluation covered 3 of 4 images (1 could not be read)" in captured.out
    assert captured.err.strip().splitlines()[-1] == (
        "1 of 4 images could not be read: img2.png (truncated)")
    assert "Traceback" not in captured.err and "remove it from" not in captured.err
    results = json.loads(out.read_text())
    assert results and {r["image_id"] for r in results} == {1, 3, 4}
    assert "bbox_mAP" in json.loads(metrics.read_text())


def test_test_strict_fails_after_writing(setup, tmp_path):
    out = tmp_path / "results.json"
    assert main(["test", *setup, "--out", str(out), "--format-only", "--strict"]) == 1
    assert {r["image_id"] for r in json.loads(out.read_text())} == {1, 3, 4}


def test_evaluation_on_the_python_side_reports_the_skipped_image(setup):
    import torch

    from detbox.apis.evaluate import run_inference
    from detbox.apis.inference import load_detector
    from detbox.config import load_config
    from detbox.data import build_dataloader

    cfg = load_config(setup[0])
    loader = build_dataloader(cfg.test_dataloader, training=False)
    model = load_detector(cfg, setup[1], torch.device("cpu"), loader.dataset)
    run = run_inference(model, loader, torch.device("cpu"))
    assert [s.image_id for s in run.samples] == [1, 3, 4]
    assert [(Path(i.path).name, i.reason, i.image_id) for i in run.skipped] == [
        ("img2.png", "truncated", 2)]


def test_browse_dataset_skips_the_broken_val_image(setup, tmp_path, capsys):
    cfg = json.loads(Path(setup[0]).read_text())
    cfg["val_dataloader"] = cfg["test_dataloader"]
    config = tmp_path / "browse.json"
    config.write_text(json.dumps(cfg))
    out = tmp_path / "pictures"
    assert main(["browse-dataset", str(config), "--split", "val", "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert sorted(p.name for p in out.glob("*.png")) == [
        "00000_img1.png", "00002_img3.png", "00003_img4.png"]
    assert "3 pictures of the val data" in captured.out
    assert captured.err.strip().splitlines()[-1] == (
        "1 of 4 images could not be read: img2.png (truncated)")
    assert main(["browse-dataset", str(config), "--split", "val", "--out", str(out),
                 "--strict"]) == 1


def test_training_pictures_of_validation_leave_the_broken_image_out(setup):
    import torch

    from detbox.apis.inference import load_detector
    from detbox.apis.training import _make_visualize_fn
    from detbox.config import load_config
    from detbox.data import build_dataset

    cfg = load_config(setup[0])
    dataset = build_dataset(cfg.test_dataloader.dataset)
    model = load_detector(cfg, setup[1], torch.device("cpu"), dataset)
    visualize = _make_visualize_fn(dataset, torch.device("cpu"), NUM_IMAGES, 0.0)
    pictures = visualize(model)
    assert [name for name, _ in pictures] == ["0_img1", "2_img3", "3_img4"]
    assert all(picture.shape == (48, 64, 3) for _, picture in pictures)
