"""``detbox train`` stopped by SIGTERM (a preemption) exits 143 with a checkpoint from which
``--resume`` finishes exactly as the uninterrupted run."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from detbox.cli.main import main
from detbox.engine.checkpoint import LATEST_NAME, load_checkpoint
from tests.conftest import REPO_ROOT, logged_train_losses

DEMO = str(REPO_ROOT / "configs/demo/retinanet_r18_fpn_synthetic.py")
OPTIONS = [
    "train_dataloader.dataset.num_images=12", "train_dataloader.dataset.image_size=64",
    "train_dataloader.batch_size=4", "train_dataloader.num_workers=0",
    "val_dataloader.dataset.num_images=4", "val_dataloader.dataset.image_size=64",
    "val_dataloader.num_workers=0", "checkpoint.interval=1", "train_cfg.max_epochs=3",
    "train_cfg.val_interval=3", "log.interval=1", "lr_schedule.warmup_iters=2",
]


@pytest.fixture(autouse=True)
def synthetic_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DETBOX_CACHE", str(tmp_path / "cache"))


def _reached_second_epoch(work_dir: Path) -> bool:
    """Whether the running training has logged a step of epoch 2 (its log is being written,
    so a last partial line is skipped)."""
    for log in work_dir.glob("*.log.jsonl"):
        for line in log.read_text().splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if record.get("mode") == "train" and record.get("epoch") == 2:
                return True
    return False


def test_sigterm_mid_training_then_resume_equals_uninterrupted_run(tmp_path):
    straight, stopped = tmp_path / "straight", tmp_path / "stopped"
    assert main(["train", DEMO, "--work-dir", str(straight), "--cfg-options", *OPTIONS]) == 0

    command = [sys.executable, "-m", "detbox.cli.main", "train", DEMO, "--work-dir",
               str(stopped), "--cfg-options", *OPTIONS]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO_ROOT)}
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while not _reached_second_epoch(stopped):
        assert process.poll() is None, "training ended before it could be stopped"
        assert time.monotonic() < deadline, "training never reached its second epoch"
        time.sleep(0.02)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=300)
    assert process.returncode == 143, err
    assert "Traceback" not in err and "SIGTERM received" in err and "--resume" in err
    checkpoint = load_checkpoint(stopped / LATEST_NAME)
    assert checkpoint["epoch"] < 3 and checkpoint["epoch_batches"] > 0
    assert not (stopped / "epoch_3.pth").exists()

    assert main(["train", DEMO, "--work-dir", str(stopped), "--resume", "--cfg-options",
                 *OPTIONS]) == 0
    assert logged_train_losses(stopped) == logged_train_losses(straight)
    ours = load_checkpoint(stopped / "epoch_3.pth")["state_dict"]
    for key, value in load_checkpoint(straight / "epoch_3.pth")["state_dict"].items():
        assert torch.equal(value, ours[key]), key
