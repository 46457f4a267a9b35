"""``detbox train`` counted in iterations and against a time budget, end to end on the demo
config (tiny images, no workers)."""

from __future__ import annotations

import json
import time

from detbox.cli.main import main
from detbox.engine.checkpoint import load_checkpoint
from tests.conftest import REPO_ROOT

DEMO = str(REPO_ROOT / "configs/demo/retinanet_r18_fpn_synthetic.py")
TINY = [
    "train_dataloader.dataset.num_images=6", "train_dataloader.dataset.image_size=64",
    "train_dataloader.batch_size=2", "train_dataloader.num_workers=0",
    "val_dataloader.dataset.num_images=2", "val_dataloader.dataset.image_size=64",
    "val_dataloader.num_workers=0", "log.interval=1", "lr_schedule.warmup_iters=2",
]


def _records(work_dir) -> list[dict]:
    (path,) = work_dir.glob("*.log.jsonl")
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_train_by_iterations_from_the_command_line(tmp_path, monkeypatch):
    monkeypatch.setenv("DETBOX_CACHE", str(tmp_path / "cache"))
    work = tmp_path / "iters"
    code = main(["train", DEMO, "--work-dir", str(work), "--cfg-options", *TINY,
                 "train_cfg=dict(by_epoch=False, max_iters=5, val_interval=4)",
                 "checkpoint.interval=2", "checkpoint.max_keep=2"])
    assert code == 0
    records = _records(work)
    assert [r["step"] for r in records if r["mode"] == "train"] == [1, 2, 3, 4, 5]
    assert [r["step"] for r in records if r["mode"] == "val"] == [4, 5]
    assert sorted(p.name for p in work.glob("*.pth")) == ["iter_4.pth", "iter_5.pth",
                                                         "latest.pth"]
    latest = load_checkpoint(work / "latest.pth")
    assert (latest["iteration"], latest["epoch"], latest["epoch_batches"]) == (5, 1, 2)


def test_max_time_flag_stops_training_on_time(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DETBOX_CACHE", str(tmp_path / "cache"))
    work = tmp_path / "budget"
    started = time.perf_counter()
    code = main(["train", DEMO, "--work-dir", str(work), "--max-time", "4s",
                 "--cfg-options", *TINY, "train_cfg.max_epochs=1000", "train_cfg.val_interval=0",
                 "checkpoint.interval=0"])
    wall = time.perf_counter() - started
    assert code == 0
    config = json.loads((work / "config.json").read_text())
    assert config["train_cfg"]["max_time"] == "4s"
    latest = load_checkpoint(work / "latest.pth")
    assert 4.0 <= latest["time_budget"]["spent"] < 8.0  # within a step (about 1 s) of 4 s
    assert latest["epoch"] < 1000 and wall < 60
    records = _records(work)
    train = [r for r in records if r["mode"] == "train"]
    # the last step started with most of the budget spent (its progress is measured before it)
    assert train[-1]["progress"] > 0.5 and train[-1]["step"] == latest["iteration"]
    assert [r["mode"] for r in records].count("val") == 1 and records[-1]["mode"] == "val"
    assert "final metrics: bbox_mAP=" in capsys.readouterr().out
