"""A wall-clock training budget (``train_cfg.max_time``, ``detbox train --max-time``): training
stops on time with its LR schedule completed, then evaluates and writes a final checkpoint."""

from __future__ import annotations

import argparse
import math
import time

import pytest
import torch
from engine_fakes import FakeDetector, read_jsonl

from detbox.cli.train import apply_flags
from detbox.config import ConfigDict
from detbox.engine.checkpoint import LATEST_NAME, load_checkpoint
from detbox.engine.lr_schedule import build_lr_schedule
from detbox.engine.settings import TrainSettings
from detbox.engine.time_budget import TimeBudget, format_duration, parse_duration
from detbox.errors import ConfigError

BUDGET = 2.0
STEP_SECONDS = 0.01


class SlowDetector(FakeDetector):
    """A step of at least ``STEP_SECONDS``, so a short budget holds a few hundred steps."""

    def loss(self, batch):
        time.sleep(STEP_SECONDS)
        return super().loss(batch)


def _train_records(work_dir) -> list[dict]:
    return [r for r in read_jsonl(work_dir) if r["mode"] == "train"]


@pytest.mark.parametrize(("value", "seconds"), [
    ("20m", 1200), ("90s", 90), ("1h30m", 5400), ("1h 30m 15s", 5415), ("1.5h", 5400),
    ("45", 45), (45, 45), (0.5, 0.5), ("2H", 7200),
])
def test_durations_parse(value, seconds):
    assert parse_duration(value) == seconds


@pytest.mark.parametrize("value", ["", "abc", "10x", "m", "-5", 0, -1, True, None, "1m30"])
def test_bad_durations_name_the_key(value):
    with pytest.raises(ConfigError, match=r"^train_cfg\.max_time must be a duration such as"):
        parse_duration(value)


def test_durations_format_back():
    assert [format_duration(s) for s in (5400, 90, 2.5, 1200, 3600)] == [
        "1h30m", "1m30s", "2.5s", "20m", "1h"]


def test_max_time_is_a_checked_setting():
    assert TrainSettings.from_config({"max_time": "20m"}).max_time_seconds == 1200
    assert TrainSettings().max_time_seconds is None
    with pytest.raises(ConfigError, match=r"^train_cfg\.max_time must be a duration"):
        TrainSettings.from_config({"max_time": "20 minutes"})
    with pytest.raises(ConfigError, match=r"unknown key 'max_tme'\. Did you mean 'max_time'"):
        TrainSettings.from_config({"max_tme": "20m"})


def test_the_command_line_flag_sets_train_cfg_max_time():
    cfg = ConfigDict(train_cfg=ConfigDict(max_epochs=12, val_interval=1))
    apply_flags(cfg, argparse.Namespace(amp=None, auto_scale_lr=False, max_time="1h30m"))
    assert dict(cfg.train_cfg) == {"max_epochs": 12, "val_interval": 1, "max_time": "1h30m"}
    assert TrainSettings.from_config(cfg.train_cfg).max_time_seconds == 5400
    bare = ConfigDict()
    apply_flags(bare, argparse.Namespace(amp=None, auto_scale_lr=False, max_time="90s"))
    assert dict(bare.train_cfg) == {"max_time": "90s"}


def test_budget_progress_lays_the_schedule_over_the_time():
    optimizer = torch.optim.SGD(torch.nn.Linear(2, 2).parameters(), lr=0.1)
    step = build_lr_schedule(optimizer, {"policy": "step", "milestones": [8, 11],
                                         "warmup": "linear", "warmup_iters": 10,
                                         "warmup_ratio": 0.1},
                             iters_per_epoch=100, max_epochs=12)
    # milestones at 8/12 and 11/12 of the budget, whatever the iteration
    assert step.lr_at(50, progress=0.66) == pytest.approx(0.1)
    assert step.lr_at(50, progress=8 / 12) == pytest.approx(0.01)
    assert step.lr_at(50, progress=0.95) == pytest.approx(0.001)
    # the warmup still counts iterations
    assert step.lr_at(5, progress=0.95) == pytest.approx(0.001 * (0.1 + 0.9 * 0.5))
    cosine = build_lr_schedule(optimizer, {"policy": "cosine", "warmup": None,
                                           "min_lr_ratio": 0.1},
                               iters_per_epoch=3, max_iters=10)
    assert cosine.lr_at(0, progress=0.5) == pytest.approx(0.1 * (0.1 + 0.9 * 0.5))
    assert cosine.lr_at(0, progress=1.0) == cosine.lr_at(0, progress=3.0) == pytest.approx(0.01)


def test_budget_clock_counts_only_running_time():
    budget = TimeBudget(10.0, spent=4.0)
    assert budget.progress == 0.4 and budget.remaining == 6.0 and not budget.expired
    budget.start()
    time.sleep(0.05)
    spent = budget.tick()
    assert 4.05 <= spent < 4.5 and budget.spent == spent
    time.sleep(0.1)  # e.g. between a checkpoint and its resume: does not count
    budget.start()
    assert spent <= budget.tick() < spent + 0.05
    restored = TimeBudget(10.0)
    restored.load_state_dict(budget.state_dict())
    assert restored.spent == budget.spent


@pytest.mark.parametrize("by_epoch", [True, False])
def test_a_short_budget_stops_on_time_with_the_schedule_done(tmp_path, make_trainer, by_epoch):
    length = {"max_epochs": 3} if by_epoch else {"by_epoch": False, "max_iters": 30}
    trainer = make_trainer(tmp_path, model=SlowDetector(), max_time=BUDGET, val_interval=0,
                           checkpoint_interval=0, **length)
    started = time.perf_counter()
    metrics = trainer.train()
    wall = time.perf_counter() - started

    # Stopped on time: within a step (plus logging) of the budget, whatever the length says.
    assert BUDGET <= trainer.budget.spent < BUDGET + 0.5
    assert wall < BUDGET + 3.0  # the final evaluation and checkpoint are quick here
    assert trainer.iteration > 30 and trainer.epoch >= 3  # past max_epochs / max_iters
    records = _train_records(tmp_path)
    assert [r["step"] for r in records] == list(range(1, trainer.iteration + 1))
    # The cosine schedule reached its end: the last step ran at (almost) all of the budget.
    last = records[-1]
    assert last["progress"] > 0.97
    assert last["lr"] < 0.05 * 0.01
    progress = [r["progress"] for r in records]
    assert progress == sorted(progress) and progress[0] == 0
    # The final evaluation ran after the last step and the final checkpoint loads.
    val = [r for r in read_jsonl(tmp_path) if r["mode"] == "val"]
    assert len(val) == 1 and val[0]["step"] == trainer.iteration
    assert metrics == {k: v for k, v in val[0].items() if k.startswith("bbox")}
    checkpoint = load_checkpoint(tmp_path / LATEST_NAME)
    assert checkpoint["iteration"] == trainer.iteration
    assert checkpoint["time_budget"]["spent"] == pytest.approx(trainer.budget.spent)
    unit = "epoch" if by_epoch and not checkpoint["epoch_batches"] else "iter"
    count = checkpoint["epoch"] if unit == "epoch" else trainer.iteration
    assert (tmp_path / f"{unit}_{count}.pth").is_file()
    assert "time budget spent" in next(tmp_path.glob("*.log")).read_text()

    # Resuming the finished run spends nothing more: it only evaluates.
    again = make_trainer(tmp_path, model=SlowDetector(), max_time=BUDGET, val_interval=0,
                         checkpoint_interval=0, **length)
    assert again.resume("auto")
    again.train()
    assert again.iteration == trainer.iteration
    assert len([r for r in read_jsonl(tmp_path) if r["mode"] == "val"]) == 2


def test_budget_milestones_follow_the_spent_fraction(tmp_path, make_trainer):
    trainer = make_trainer(tmp_path, model=SlowDetector(), max_time=1.0, by_epoch=False,
                           max_iters=10, lr_schedule_cfg={"policy": "step", "milestones": [5],
                                                          "warmup": None},
                           evaluate_fn=None, checkpoint_interval=0)
    trainer.train()
    records = _train_records(tmp_path)
    clear = [r for r in records if abs(r["progress"] - 0.5) > 1e-3]  # logged to 4 decimals
    assert all(math.isclose(r["lr"], 0.05 if r["progress"] < 0.5 else 0.005) for r in clear)
    assert [records[0]["lr"], records[-1]["lr"]] == pytest.approx([0.05, 0.005])


def test_a_budget_resumes_with_what_was_left(tmp_path, make_trainer):
    first = make_trainer(tmp_path, model=SlowDetector(), max_time=1.0, evaluate_fn=None,
                         checkpoint_interval=0)
    first.train()
    spent = load_checkpoint(tmp_path / LATEST_NAME)["time_budget"]["spent"]
    longer = make_trainer(tmp_path, model=SlowDetector(), max_time=1.5, evaluate_fn=None,
                          checkpoint_interval=0)
    assert longer.resume("auto") and longer.budget.spent == spent
    longer.train()
    assert 1.5 <= longer.budget.spent < 2.0
    assert longer.iteration > first.iteration
