"""A process group of one that the caller joined trains inside DDP (the one-GPU NCCL check)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn

from detbox.engine.training_step import LossForward, wrap_for_training
from tests._two_ranks import free_port

REPO = Path(__file__).resolve().parents[2]


def test_single_process_trains_unwrapped_and_a_joined_group_of_one_in_ddp():
    model, cpu = nn.Linear(2, 2), torch.device("cpu")
    assert type(wrap_for_training(model, cpu)) is LossForward
    dist.init_process_group("gloo", rank=0, world_size=1,
                            init_method=f"tcp://127.0.0.1:{free_port()}")
    try:
        wrapped = wrap_for_training(model, cpu)
    finally:
        dist.destroy_process_group()
    assert isinstance(wrapped, nn.parallel.DistributedDataParallel)
    assert wrapped.module.module is model


def test_the_check_script_trains_the_recipe_inside_ddp(tmp_path):
    out = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "ddp_world_of_one.py"),
         str(REPO / "configs" / "demo" / "retinanet_r18_fpn_synthetic.py"), "--device", "cpu",
         "--work-dir", str(tmp_path), "--cfg-options",
         "train_cfg=dict(by_epoch=False, max_iters=2, val_interval=2)", "checkpoint.interval=2",
         "train_dataloader.dataset.num_images=16", "val_dataloader.dataset.num_images=8",
         "train_dataloader.num_workers=0", "val_dataloader.num_workers=0"],
        capture_output=True, text=True, cwd=REPO, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "backend gloo, world size 1" in out.stdout
    assert "built: DistributedDataParallel(LossForward" in out.stdout
    assert (tmp_path / "iter_2.pth").exists()
