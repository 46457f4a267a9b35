"""The training options at scale, end to end from the command line on the demo config."""

from __future__ import annotations

import json

import pytest

from detbox.cli.main import main
from tests.conftest import REPO_ROOT

DEMO = str(REPO_ROOT / "configs/demo/retinanet_r18_fpn_synthetic.py")
TINY = [
    "train_dataloader.dataset.num_images=8", "train_dataloader.dataset.image_size=64",
    "train_dataloader.batch_size=2", "train_dataloader.num_workers=0",
    "val_dataloader.dataset.num_images=3", "val_dataloader.dataset.image_size=64",
    "val_dataloader.num_workers=0", "train_cfg.val_interval=1", "train_cfg.max_epochs=2",
    "log.interval=1", "lr_schedule.warmup_iters=2",
]


@pytest.mark.slow
def test_amp_accumulation_lr_scaling_val_loss_best_and_tensorboard(tmp_path, monkeypatch):
    pytest.importorskip("tensorboard", reason="the tensorboard package is an optional extra")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    monkeypatch.setenv("DETBOX_CACHE", str(tmp_path / "cache"))
    work = tmp_path / "run"
    code = main(["train", DEMO, "--work-dir", str(work), "--amp", "bf16", "--auto-scale-lr",
                 "--cfg-options", *TINY, "auto_scale_lr=dict(base_batch_size=16)",
                 "train_cfg.accumulate_steps=2", "evaluation.val_loss=True",
                 "checkpoint.save_best=val_loss", "checkpoint.interval=0",
                 "log.tensorboard=True", "log.num_vis_images=2", "sync_bn=True"])
    assert code == 0

    config = json.loads((work / "config.json").read_text())
    assert config["amp"] == {"enabled": True, "dtype": "bf16"}
    assert config["auto_scale_lr"] == {"base_batch_size": 16, "enable": True}
    log = next(work.glob("*.log")).read_text()
    assert "auto_scale_lr: lr 0.002 -> 0.0005 by the linear scaling rule (total batch 4 = 2 " \
           "per process x 1 process(es) x 2 accumulation step(s); base_batch_size 16)" in log
    assert "mixed precision: bf16 autocast on cpu" in log
    assert "training 2 epochs x 2 iterations (4 batches per epoch)" in log

    records = [json.loads(line) for line in next(work.glob("*.log.jsonl")).read_text().splitlines()]
    val = [r for r in records if r["mode"] == "val"]
    assert [r["epoch"] for r in val] == [1, 2]
    assert {"bbox_mAP", "val_loss", "val_loss_cls", "val_loss_bbox"} <= val[0].keys()
    best = min(val, key=lambda r: r["val_loss"])["epoch"]
    assert sorted(p.name for p in work.glob("*.pth")) == [
        f"best_val_loss_epoch_{best}.pth", "epoch_2.pth", "latest.pth"]

    (run,) = (work / "tensorboard").iterdir()
    tags = EventAccumulator(str(run)).Reload().Tags()
    assert {"train/loss", "train/lr", "val/val_loss", "val/bbox_mAP"} <= set(tags["scalars"])
    assert len(tags["images"]) == 2 and tags["images"][0].startswith("val_images/0_")
