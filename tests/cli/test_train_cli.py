"""End to end through the command line: train, resume, test, infer and eval on tiny data."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from detbox.cli.main import main
from detbox.config import ConfigDict
from detbox.data import build_dataset
from tests.conftest import REPO_ROOT, logged_train_losses, shared_dataset

DEMO = str(REPO_ROOT / "configs/demo/retinanet_r18_fpn_synthetic.py")
TINY = [
    "train_dataloader.dataset.num_images=12", "train_dataloader.dataset.image_size=64",
    "train_dataloader.batch_size=4", "train_dataloader.num_workers=0",
    "val_dataloader.dataset.num_images=4", "val_dataloader.dataset.image_size=64",
    "val_dataloader.num_workers=0", "train_cfg.val_interval=1", "checkpoint.interval=1",
    "train_cfg.max_epochs=2", "log.interval=1", "lr_schedule.warmup_iters=2",
]


def jsonl(work_dir: Path, mode: str) -> list[dict]:
    (log,) = work_dir.glob("*.log.jsonl")
    records = [json.loads(line) for line in log.read_text().splitlines()]
    return [r for r in records if r.get("mode") == mode]


@pytest.fixture(autouse=True)
def synthetic_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DETBOX_CACHE", str(tmp_path / "cache"))


def test_train_test_infer_eval(tmp_path, capsys):
    work = tmp_path / "run"
    assert main(["train", DEMO, "--work-dir", str(work), "--cfg-options", *TINY]) == 0
    assert (work / "latest.pth").is_file() and (work / "config.json").is_file()
    label_map = json.loads((work / "label_map.json").read_text())["classes"]
    assert [c["name"] for c in label_map] == ["circle", "square", "triangle"]
    assert [c["category_id"] for c in label_map] == [1, 2, 3]
    val = jsonl(work, "val")
    assert [r["epoch"] for r in val] == [1, 2] and "bbox_mAP" in val[-1]
    (text_log,) = work.glob("*.log")
    assert text_log.read_text().count("| triangle ") == 2  # per-class table at each evaluation

    results = tmp_path / "results.json"
    capsys.readouterr()
    assert main(["test", DEMO, str(work / "latest.pth"), "--out", str(results),
                 "--cfg-options", *TINY]) == 0
    printed = capsys.readouterr().out
    assert "Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ]" in printed
    assert "| circle " in printed and "ms per image" in printed
    detections = json.loads(results.read_text())
    assert detections and {"image_id", "category_id", "bbox", "score"} <= set(detections[0])
    assert {d["category_id"] for d in detections} <= {1, 2, 3}

    config = json.loads((work / "config.json").read_text())
    val_set = build_dataset(ConfigDict(config["val_dataloader"]["dataset"]))
    metrics_file = tmp_path / "metrics.json"
    assert main(["eval", str(val_set.ann_file), str(results), "--json-out", str(metrics_file)]) == 0
    stats = json.loads(metrics_file.read_text())["bbox"]["stats"]
    assert len(stats) == 12 and stats[0] >= 0.0

    image_dir = Path(val_set.get_record(0)["img_path"]).parent
    preds = tmp_path / "preds.json"
    assert main(["infer", DEMO, str(work / "latest.pth"), str(image_dir), "--out", str(preds),
                 "--score-thr", "0.0", "--vis-dir", str(tmp_path / "vis")]) == 0
    records = json.loads(preds.read_text())
    assert len(records) == 4
    first = next(iter(records.values()))
    assert first["height"] == 64 and first["width"] == 64
    prediction = first["predictions"][0]
    assert set(prediction["bbox"]) == {"x_min", "y_min", "width", "height"}
    assert prediction["class"]["name"] in {"circle", "square", "triangle"}
    assert len(list((tmp_path / "vis").glob("*.png"))) == 4


def test_resume_after_kill_matches_uninterrupted_run(tmp_path):
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    options = [o for o in TINY if not o.startswith("train_cfg.max_epochs")]
    options += ["train_cfg.max_epochs=3", "train_cfg.val_interval=3"]
    assert main(["train", DEMO, "--work-dir", str(straight), "--cfg-options", *options]) == 0

    command = [sys.executable, "-m", "detbox.cli.main", "train", DEMO, "--work-dir", str(killed),
               "--cfg-options", *options]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 300
    while not (killed / "epoch_1.pth").exists() and process.poll() is None:
        assert time.monotonic() < deadline, "training never wrote its first checkpoint"
        time.sleep(0.02)
    process.kill()
    process.wait()
    assert not (killed / "epoch_3.pth").exists(), "the run finished before it could be killed"
    assert main(["train", DEMO, "--work-dir", str(killed), "--resume", "--cfg-options",
                 *options]) == 0

    assert logged_train_losses(killed) == logged_train_losses(straight)


def test_train_on_real_coco_data_with_dataset_swapped_on_the_command_line(tmp_path):
    root = shared_dataset("microcontroller")
    work = tmp_path / "mcu"
    def coco(split: str, pipeline: str, extra: str = "") -> str:
        return (f"dict(type='CocoDataset', ann_file='{root}/annotations/instances_{split}.json', "
                f"img_dir='{root}/images', pipeline={pipeline}{extra})")

    options = ["train_dataloader.batch_size=4", "train_dataloader.num_workers=0",
               "val_dataloader.num_workers=0", "train_cfg.max_epochs=1", "log.interval=5",
               f"train_dataloader.dataset={coco('train', 'train_pipeline', ', filter_empty=True')}",
               f"val_dataloader.dataset={coco('val', 'test_pipeline')}"]
    assert main(["train", DEMO, "--work-dir", str(work), "--cfg-options", *options]) == 0
    (val_record,) = jsonl(work, "val")
    assert 0.0 <= val_record["bbox_mAP"] <= 1.0
    meta = json.loads((work / "config.json").read_text())
    assert meta["model"]["bbox_head"]["num_classes"] == 4
