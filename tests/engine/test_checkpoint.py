"""Checkpoint files: weights-only round trip, atomic writes, rotation, partial loading."""

from __future__ import annotations

import argparse
import os
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from engine_fakes import FakeDetector
from torch import nn

import detbox.utils.io
from detbox.engine.checkpoint import (
    LATEST_NAME,
    extract_state_dict,
    find_latest,
    load_checkpoint,
    load_weights,
    remove_old_checkpoints,
    save_checkpoint,
    update_latest,
)
from detbox.engine.lr_schedule import build_lr_schedule
from detbox.engine.seed import get_rng_state, set_rng_state
from detbox.errors import CheckpointError


def _trained_state(model: nn.Module):
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    schedule = build_lr_schedule(optimizer, {"policy": "step", "milestones": [1]},
                                 iters_per_epoch=4, max_epochs=2)
    model.cls(torch.rand(2, 8)).sum().backward()
    optimizer.step()
    return optimizer, schedule


def _save(path: Path, model: nn.Module, epoch: int = 1, **kwargs) -> Path:
    return save_checkpoint(path, model=model, epoch=epoch, iteration=epoch * 4, **kwargs)


def test_round_trip_loads_with_weights_only(tmp_path):
    model = FakeDetector()
    optimizer, schedule = _trained_state(model)
    meta = {"class_names": ["cat", "dog"], "cat_ids": [3, 7],
            "config": {"model": {"type": nn.Conv2d}}}
    path = _save(tmp_path / "epoch_1.pth", model, optimizer=optimizer, scheduler=schedule,
                 meta=meta)

    raw = torch.load(path, weights_only=True)
    assert isinstance(raw["meta"], str)
    checkpoint = load_checkpoint(path)
    assert checkpoint["meta"] == {"class_names": ["cat", "dog"], "cat_ids": [3, 7],
                                  "config": {"model": {"type": "Conv2d"}}}
    assert checkpoint["epoch"] == 1 and checkpoint["iteration"] == 4
    for key, value in model.state_dict().items():
        assert torch.equal(checkpoint["state_dict"][key], value)
    restored = torch.optim.SGD(FakeDetector().parameters(), lr=0.1, momentum=0.9)
    restored.load_state_dict(checkpoint["optimizer"])
    assert checkpoint["scheduler"]["base_lrs"] == [0.1]
    assert len(checkpoint["rng"]) == 1


def test_rng_state_in_a_checkpoint_replays_the_same_numbers(tmp_path):
    model = FakeDetector()
    path = _save(tmp_path / "epoch_1.pth", model, rng_state=[get_rng_state()])
    expected = (random.random(), np.random.rand(), torch.rand(3))
    set_rng_state(load_checkpoint(path)["rng"][0])
    assert random.random() == expected[0]
    assert np.random.rand() == expected[1]
    assert torch.equal(torch.rand(3), expected[2])


def test_failure_mid_write_leaves_previous_file_intact(tmp_path, monkeypatch):
    model = FakeDetector()
    path = _save(tmp_path / "epoch_1.pth", model, epoch=1)

    def broken_save(obj, f):
        f.write(b"PK\x03\x04 half a zip file")
        raise OSError("disk full")

    monkeypatch.setattr(detbox.utils.io.torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        _save(path, model, epoch=2)
    monkeypatch.undo()
    assert load_checkpoint(path)["epoch"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["epoch_1.pth"]


def test_unloadable_value_is_refused_before_writing(tmp_path):
    class Odd:
        def state_dict(self):
            return {"thing": object()}

    with pytest.raises(CheckpointError, match=r"scheduler\.thing.*object"):
        _save(tmp_path / "epoch_1.pth", FakeDetector(), scheduler=Odd())
    assert not list(tmp_path.iterdir())


def test_missing_corrupt_and_unsafe_files_raise_checkpoint_error(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "nope.pth")
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"this is not a checkpoint")
    with pytest.raises(CheckpointError, match="truncated or not a PyTorch file"):
        load_checkpoint(garbage)
    good = _save(tmp_path / "good.pth", FakeDetector())
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="truncated"):
        load_checkpoint(truncated)
    unsafe = tmp_path / "unsafe.pth"
    torch.save({"state_dict": {}, "args": argparse.Namespace(lr=0.1)}, unsafe)
    with pytest.raises(CheckpointError, match="safe loading refuses"):
        load_checkpoint(unsafe)


def test_keep_last_k_and_latest_pointer(tmp_path):
    model = FakeDetector()
    for epoch in range(1, 6):
        path = _save(tmp_path / f"epoch_{epoch}.pth", model, epoch=epoch)
        update_latest(tmp_path, path)
        remove_old_checkpoints(tmp_path, keep=2)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["epoch_4.pth", "epoch_5.pth", LATEST_NAME]
    assert torch.load(tmp_path / LATEST_NAME, weights_only=True)["epoch"] == 5
    assert remove_old_checkpoints(tmp_path, keep=0) == []


def test_latest_falls_back_to_a_copy_without_hard_links(tmp_path, monkeypatch):
    path = _save(tmp_path / "epoch_1.pth", FakeDetector())

    def no_links(*args):
        raise OSError("hard links not supported")

    monkeypatch.setattr(os, "link", no_links)
    latest = update_latest(tmp_path, path)
    assert load_checkpoint(latest)["epoch"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["epoch_1.pth", LATEST_NAME]


def test_find_latest(tmp_path):
    assert find_latest(tmp_path) is None
    assert find_latest(tmp_path / "missing") is None
    model = FakeDetector()
    for epoch in (2, 10):
        _save(tmp_path / f"epoch_{epoch}.pth", model, epoch=epoch)
    (tmp_path / "epoch_x.pth").write_text("not an epoch file")
    assert find_latest(tmp_path) == tmp_path / "epoch_10.pth"  # numeric, not text order
    update_latest(tmp_path, tmp_path / "epoch_2.pth")
    assert find_latest(tmp_path) == tmp_path / LATEST_NAME


def test_load_weights_skips_and_reports_each_mismatch():
    torch.manual_seed(0)
    source = FakeDetector(num_classes=5)
    state = source.state_dict()
    state["extra_head.weight"] = torch.zeros(2, 3)
    del state["reg.bias"]
    target = FakeDetector(num_classes=3)
    fresh_cls = target.cls.weight.detach().clone()

    report = load_weights(target, state)

    assert torch.equal(target.conv.weight, source.conv.weight)
    assert torch.equal(target.norm.running_mean, source.norm.running_mean)
    assert torch.equal(target.cls.weight, fresh_cls)
    assert ("cls.weight", (5, 8), (3, 8)) in report.mismatched
    assert ("cls.bias", (5,), (3,)) in report.mismatched
    assert report.missing == [("reg.bias", (4,))]
    assert report.unexpected == [("extra_head.weight", (2, 3))]
    assert report.skipped == 4
    text = str(report)
    assert "cls.weight: checkpoint (5, 8) vs model (3, 8)" in text
    assert "reg.bias: model (4,)" in text
    assert "extra_head.weight: checkpoint (2, 3)" in text


@pytest.mark.parametrize("wrap", ["bare", "state_dict", "model", "ddp_prefix"])
def test_extract_state_dict_accepts_common_layouts(wrap):
    state = FakeDetector().state_dict()
    checkpoint = {
        "bare": state,
        "state_dict": {"state_dict": state, "epoch": 3},
        "model": {"model": state, "optimizer": {}},
        "ddp_prefix": {f"module.{k}": v for k, v in state.items()},
    }[wrap]
    assert extract_state_dict(checkpoint).keys() == state.keys()


def test_extract_state_dict_without_tensors_is_an_error():
    with pytest.raises(CheckpointError, match="no model weights"):
        extract_state_dict({"epoch": 3, "meta": "{}"})
