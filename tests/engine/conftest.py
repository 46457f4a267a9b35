"""Shared fixtures for the engine tests; the fakes live in ``engine_fakes.py`` beside this file."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest
import torch

from detbox.engine import Trainer
from detbox.engine.settings import CheckpointSettings, LogSettings, RuntimeSettings, TrainSettings

# Make engine_fakes importable by the test modules whatever pytest import mode is in use.
_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)
fakes = importlib.import_module("engine_fakes")

OPTIMIZER = {"type": "SGD", "lr": 0.05, "momentum": 0.9, "weight_decay": 1e-4,
             "norm_decay_mult": 0.0}
SCHEDULE = {"policy": "cosine", "warmup": "linear", "warmup_iters": 4, "warmup_ratio": 0.1}

# Flat test keywords -> (settings class, field); everything else goes to the Trainer as is.
_SETTING_KEYS = {
    "max_epochs": (TrainSettings, "max_epochs"),
    "by_epoch": (TrainSettings, "by_epoch"),
    "max_iters": (TrainSettings, "max_iters"),
    "max_time": (TrainSettings, "max_time"),
    "val_interval": (TrainSettings, "val_interval"),
    "grad_clip": (TrainSettings, "grad_clip"),
    "accumulate_steps": (TrainSettings, "accumulate_steps"),
    "patience": (TrainSettings, "patience"),
    "divergence": (TrainSettings, "divergence"),
    "checkpoint_interval": (CheckpointSettings, "interval"),
    "max_keep_checkpoints": (CheckpointSettings, "max_keep"),
    "save_best": (CheckpointSettings, "save_best"),
    "best_rule": (CheckpointSettings, "rule"),
    "max_keep_best": (CheckpointSettings, "max_keep_best"),
    "log_interval": (LogSettings, "interval"),
    "tensorboard": (LogSettings, "tensorboard"),
    "progress_bar": (LogSettings, "progress_bar"),
    "amp": (RuntimeSettings, "amp"),
    "auto_scale_lr": (RuntimeSettings, "auto_scale_lr"),
    "sync_bn": (RuntimeSettings, "sync_bn"),
    "cpu_fast_path": (RuntimeSettings, "cpu_fast_path"),
}
_ARGUMENT = {TrainSettings: "train", CheckpointSettings: "checkpoint", LogSettings: "log",
             RuntimeSettings: "runtime"}


def trainer_arguments(**flat) -> dict:
    """Trainer keyword arguments from flat test keywords (``max_epochs=3, log_interval=1``)."""
    grouped: dict = {cls: {} for cls in _ARGUMENT}
    arguments = {}
    for key, value in flat.items():
        if key in _SETTING_KEYS:
            cls, name = _SETTING_KEYS[key]
            grouped[cls][name] = value
        else:
            arguments[key] = value
    return {**arguments, **{_ARGUMENT[cls]: cls(**values) for cls, values in grouped.items()}}


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
        if overrides.get("by_epoch") is False and "max_epochs" not in overrides:
            settings["max_epochs"] = None  # iterations are the length
        return Trainer(**trainer_arguments(**settings))

    return build
