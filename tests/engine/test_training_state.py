"""TrainingState: its state_dict is a training checkpoint's body and loads back exactly."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from engine_fakes import make_evaluate_fn

from detbox.engine import TrainingState, find_latest, load_checkpoint
from detbox.errors import CheckpointError

STATE_KEYS = {"state_dict", "optimizer", "scheduler", "epoch", "iteration", "epoch_batches", "rng",
              "amp", "best"}


def _draws() -> tuple:
    return random.random(), float(np.random.rand()), torch.rand(3).tolist()


def test_state_dict_round_trip_restores_weights_optimizer_counters_history_and_rngs(
        tmp_path, make_trainer):
    trained = make_trainer(tmp_path / "a", max_epochs=2, save_best="bbox_mAP")
    trained.train()
    saved = trained.state.state_dict()
    assert set(saved) == STATE_KEYS and len(saved["rng"]) == 1
    expected_draws = _draws()

    fresh = make_trainer(tmp_path / "b", max_epochs=2, save_best="bbox_mAP", seed=3, model_seed=9)
    assert isinstance(fresh.state, TrainingState) and fresh.state.iteration == 0
    assert fresh.state.load_state_dict(saved, source="memory") == []
    assert _draws() == expected_draws  # every global generator continues where it was saved
    assert (fresh.epoch, fresh.iteration) == (2, trained.iteration)
    for key, value in trained.model.state_dict().items():
        assert torch.equal(fresh.model.state_dict()[key], value), key
    again = fresh.state.state_dict()
    assert again["optimizer"]["param_groups"] == saved["optimizer"]["param_groups"]
    for index, entry in saved["optimizer"]["state"].items():
        assert torch.equal(again["optimizer"]["state"][index]["momentum_buffer"],
                           entry["momentum_buffer"])
    assert again["scheduler"] == saved["scheduler"]
    assert again["best"] == saved["best"] and again["amp"] == saved["amp"]


def test_a_training_checkpoint_holds_the_state_dict_plus_meta_and_versions(tmp_path, make_trainer):
    make_trainer(tmp_path, max_epochs=1).train()
    checkpoint = load_checkpoint(find_latest(tmp_path))
    assert set(checkpoint) == STATE_KEYS | {"meta", "detbox_version", "torch_version",
                                                  "format_version"}
    assert checkpoint["meta"]["class_names"] == ["a", "b", "c"]


def test_load_state_dict_refuses_a_weights_only_file_and_reports_what_changed(tmp_path,
                                                                           make_trainer):
    trainer = make_trainer(tmp_path, max_epochs=1)
    saved = trainer.state.state_dict()
    with pytest.raises(CheckpointError, match="w.pth is not a training checkpoint .*load_from"):
        trainer.state.load_state_dict({"state_dict": saved["state_dict"]}, source="w.pth")

    other = make_trainer(tmp_path / "other", max_epochs=1, evaluate_fn=make_evaluate_fn(),
                         optimizer_cfg={"type": "SGD", "lr": 0.5, "momentum": 0.9,
                                        "weight_decay": 1e-4, "norm_decay_mult": 0.0})
    warnings = other.state.load_state_dict({**saved, "rng": []}, source="x.pth")
    assert any("x.pth trained with base lr 0.05, this config gives 0.5" in w for w in warnings)
    assert any("x.pth has no RNG state" in w for w in warnings)
    assert other.state.scheduler.base_lrs == [0.05] * len(other.state.scheduler.base_lrs)
