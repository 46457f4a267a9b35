"""One rank of the two-process (gloo) run of ``test_ema.py``: a DDP run with a moving average."""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
import torch.distributed as dist
from engine_fakes import FakeDetector, make_evaluate_fn, make_loader


def ema_worker(rank: int, world_size: int, port: int, root: str) -> None:
    """Train two epochs with ``ema`` on rank ``rank``; write ``root/result_<rank>.json`` with
    the averaged and trained weights, the update count and the weights evaluation saw."""
    from detbox.engine import Trainer
    from detbox.engine.settings import EMASettings, LogSettings, TrainSettings

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world_size)
    torch.manual_seed(rank)  # the replicas start apart; DDP broadcasts rank 0's weights
    evaluate, seen = make_evaluate_fn(), []

    def record(model):
        seen.append({k: v.tolist() for k, v in model.state_dict().items()})
        return evaluate(model)

    trainer = Trainer(
        model=FakeDetector(), train_loader=make_loader(rank=rank, world_size=world_size),
        optimizer_cfg={"type": "SGD", "lr": 0.05, "momentum": 0.9},
        lr_schedule_cfg={"policy": "step", "milestones": [1], "warmup": None},
        train=TrainSettings(max_epochs=2), work_dir=Path(root) / "run", evaluate_fn=record,
        log=LogSettings(interval=1, progress_bar=False), seed=3,
        ema=EMASettings(momentum=0.2, gamma=3),
    )
    trainer.train()
    result = {
        "averaged": {k: v.tolist() for k, v in trainer.state.ema.module.state_dict().items()},
        "trained": {k: v.tolist() for k, v in trainer.model.state_dict().items()},
        "steps": trainer.state.ema.steps, "iteration": trainer.iteration, "seen": seen[-1],
    }
    (Path(root) / f"result_{rank}.json").write_text(json.dumps(result))
    dist.destroy_process_group()
