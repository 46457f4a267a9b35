"""Shared fixtures for the engine tests; the fakes live in ``engine_fakes.py`` beside this file."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest
import torch

from detbox.engine import Trainer

# Make engine_fakes importable by the test modules whatever pytest import mode is in use.
_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)
fakes = importlib.import_module("engine_fakes")

OPTIMIZER = {"type": "SGD", "lr": 0.05, "momentum": 0.9, "weight_decay": 1e-4,
             "norm_decay_mult": 0.0}
SCHEDULE = {"policy": "cosine", "warmup": "linear", "warmup_iters": 4, "warmup_ratio": 0.1}


@pytest.fixture
def make_trainer():
    """``make_trainer(work_dir, **overrides)``: a Trainer over the fakes with test defaults."""

    def build(work_dir: Path, *, model=None, loader=None, **overrides) -> Trainer:
        if model is None:
            torch.manual_seed(overrides.pop("model_seed", 0))
            model = fakes.FakeDetector()
        settings = {
            "model": model,
            "train_loader": loader if loader is not None else fakes.make_loader(),
            "optimizer_cfg": OPTIMIZER,
            "lr_schedule_cfg": SCHEDULE,
            "max_epochs": 3,
            "work_dir": work_dir,
            "evaluate_fn": fakes.make_evaluate_fn(),
            "log_interval": 1,
            "grad_clip": {"max_norm": 10.0},
            "meta": {"class_names": ["a", "b", "c"], "cat_ids": [1, 2, 3]},
            "seed": 7,
            "progress_bar": False,
        }
        settings.update(overrides)
        return Trainer(**settings)

    return build
