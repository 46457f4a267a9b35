"""The training log states the lr used and why, and hints at --auto-scale-lr when it matters."""

from __future__ import annotations

import pytest

from detbox.engine.optim import scale_lr

SGD = {"type": "SGD", "lr": 0.02}


def test_scaled_lr_shows_the_arithmetic():
    cfg, note = scale_lr(SGD, {"base_batch_size": 16, "enable": True}, batch_per_process=2,
                         world_size=1)
    assert cfg["lr"] == pytest.approx(0.0025)
    assert "lr 0.0025 = 0.02 x 2 (total batch) / 16 (base_batch_size)" in note


def test_unscaled_lr_with_another_batch_gives_the_hint():
    cfg, note = scale_lr(SGD, {"base_batch_size": 16, "enable": False}, batch_per_process=2,
                         world_size=1)
    assert cfg["lr"] == 0.02
    assert "lr 0.02 as configured" in note
    assert "the recipe assumes 16 images per step, this run has 2" in note
    assert "--auto-scale-lr" in note and "lr 0.0025" in note


def test_unscaled_lr_with_the_reference_batch_and_without_one():
    _, note = scale_lr(SGD, {"base_batch_size": 16}, batch_per_process=2, world_size=8)
    assert "lr 0.02 as configured, for the recipe's 16 images per step" in note
    assert "--auto-scale-lr" not in note
    _, note = scale_lr(SGD, None, batch_per_process=2, world_size=1)
    assert note.startswith("lr 0.02 as configured") and "base_batch_size" in note
