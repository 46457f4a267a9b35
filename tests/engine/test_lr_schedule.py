"""Learning rates at chosen iterations for each policy, warmup and the config checks."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from detbox.engine.lr_schedule import build_lr_schedule
from detbox.errors import ConfigError


def _optimizer(lr: float = 0.02) -> torch.optim.Optimizer:
    return torch.optim.SGD(nn.Linear(2, 2).parameters(), lr=lr, momentum=0.9)


def test_linear_warmup_then_steps_at_epoch_milestones():
    schedule = build_lr_schedule(
        _optimizer(0.02),
        {"policy": "step", "milestones": [8, 11], "gamma": 0.1, "warmup": "linear",
         "warmup_iters": 5, "warmup_ratio": 0.001},
        iters_per_epoch=10, max_epochs=12,
    )
    assert schedule.lr_at(0) == pytest.approx(0.02 * 0.001)
    assert schedule.lr_at(2) == pytest.approx(0.02 * (0.001 + 0.999 * 2 / 5))
    assert schedule.lr_at(5) == pytest.approx(0.02)
    assert schedule.lr_at(79) == pytest.approx(0.02)  # last iteration of epoch 8
    assert schedule.lr_at(80) == pytest.approx(0.002)  # first iteration of epoch 9
    assert schedule.lr_at(109) == pytest.approx(0.002)
    assert schedule.lr_at(110) == pytest.approx(0.0002)
    assert schedule.lr_at(119) == pytest.approx(0.0002)


def test_cosine_runs_from_base_to_min_ratio():
    schedule = build_lr_schedule(
        _optimizer(0.1), {"policy": "cosine", "min_lr_ratio": 0.05, "warmup": None},
        iters_per_epoch=5, max_epochs=4,
    )
    assert schedule.lr_at(0) == pytest.approx(0.1)
    middle = 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * 0.5))
    assert schedule.lr_at(19 / 2) == pytest.approx(0.1 * middle)
    assert schedule.lr_at(19) == pytest.approx(0.1 * 0.05)
    lrs = [schedule.lr_at(i) for i in range(20)]
    assert lrs == sorted(lrs, reverse=True)


def test_warmup_scales_cosine_and_constant_warmup_holds():
    schedule = build_lr_schedule(
        _optimizer(0.1), {"policy": "cosine", "warmup": "linear", "warmup_iters": 4,
                          "warmup_ratio": 0.5},
        iters_per_epoch=5, max_epochs=2,
    )
    cosine_at_2 = 0.5 * (1 + math.cos(math.pi * 2 / 9))
    assert schedule.lr_at(2) == pytest.approx(0.1 * cosine_at_2 * (0.5 + 0.5 * 2 / 4))
    held = build_lr_schedule(
        _optimizer(0.1), {"policy": "constant", "warmup": "constant", "warmup_iters": 3,
                          "warmup_ratio": 0.1},
        iters_per_epoch=5, max_epochs=2,
    )
    assert [held.lr_at(i) for i in range(5)] == pytest.approx([0.01, 0.01, 0.01, 0.1, 0.1])


def test_apply_scales_every_group_and_state_round_trips():
    model = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2))
    optimizer = torch.optim.SGD(
        [{"params": model[0].parameters()}, {"params": model[1].parameters(), "lr": 0.01}],
        lr=0.1,
    )
    schedule = build_lr_schedule(optimizer, {"policy": "step", "milestones": [1], "warmup": None},
                                 iters_per_epoch=3, max_epochs=2)
    assert schedule.apply(3) == pytest.approx(0.01)
    assert [g["lr"] for g in optimizer.param_groups] == pytest.approx([0.01, 0.001])
    state = schedule.state_dict()
    other = build_lr_schedule(
        torch.optim.SGD(
            [{"params": model[0].parameters()}, {"params": model[1].parameters(), "lr": 0.5}],
            lr=0.5,
        ),
        {"policy": "step", "milestones": [1], "warmup": None}, iters_per_epoch=3, max_epochs=2,
    )
    other.load_state_dict(state)
    assert other.last_iteration == 3
    assert other.lr_at(0, group=1) == pytest.approx(0.01)


@pytest.mark.parametrize("cfg", [None, {}])
def test_defaults_warm_up_then_hold(cfg):
    schedule = build_lr_schedule(_optimizer(0.3), cfg, iters_per_epoch=100, max_epochs=12)
    assert schedule.lr_at(0) == pytest.approx(0.3 * 0.001)
    assert schedule.lr_at(250) == pytest.approx(0.3 * (0.001 + 0.999 * 0.5))
    assert schedule.lr_at(500) == schedule.lr_at(1199) == pytest.approx(0.3)


@pytest.mark.parametrize(
    ("cfg", "message"),
    [
        ({"policy": "step", "milestone": [8]}, "Did you mean 'milestones'"),
        ({"policy": "cosin"}, "Did you mean 'cosine'"),
        ({"policy": "step", "warmup": "linaer"}, "Did you mean 'linear'"),
        ({"policy": "step", "milestones": [11, 8]}, "increasing"),
    ],
)
def test_config_mistakes_are_named(cfg, message):
    with pytest.raises(ConfigError, match=message):
        build_lr_schedule(_optimizer(), cfg, iters_per_epoch=10, max_epochs=12)
