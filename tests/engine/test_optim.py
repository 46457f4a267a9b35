"""Optimizer construction: parameter groups, frozen parameters and config mistakes."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from detbox.engine.optim import build_optimizer
from detbox.errors import ConfigError


def _model() -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Conv2d(4, 2, 1))


def _decay_of(optimizer: torch.optim.Optimizer) -> dict[str, float]:
    return {name: group["weight_decay"] for group in optimizer.param_groups
            for name in group["names"]}


def test_sgd_with_norm_and_bias_decay_multipliers():
    optimizer = build_optimizer(_model(), {
        "type": "SGD", "lr": 0.02, "momentum": 0.9, "weight_decay": 1e-4,
        "norm_decay_mult": 0.0, "bias_decay_mult": 0.5,
    })
    assert isinstance(optimizer, torch.optim.SGD)
    assert optimizer.defaults["momentum"] == 0.9
    assert _decay_of(optimizer) == pytest.approx({
        "0.weight": 1e-4, "0.bias": 5e-5, "1.weight": 0.0, "1.bias": 0.0,
        "2.weight": 1e-4, "2.bias": 5e-5,
    })
    assert all(group["lr"] == 0.02 for group in optimizer.param_groups)


def test_without_multipliers_everything_shares_one_group():
    optimizer = build_optimizer(_model(), {"type": "SGD", "lr": 0.1, "weight_decay": 1e-4})
    assert len(optimizer.param_groups) == 1
    assert len(optimizer.param_groups[0]["params"]) == 6


def test_only_trainable_parameters_are_optimised():
    model = _model()
    for param in model[0].parameters():
        param.requires_grad_(False)
    optimizer = build_optimizer(model, {"type": "AdamW", "lr": 1e-3})
    names = set(_decay_of(optimizer))
    assert names == {"1.weight", "1.bias", "2.weight", "2.bias"}
    assert optimizer.param_groups[0]["weight_decay"] == pytest.approx(0.01)  # AdamW's default


def test_adam_takes_its_own_keys():
    optimizer = build_optimizer(_model(), {"type": "Adam", "lr": 1e-3, "betas": (0.8, 0.9)})
    assert optimizer.defaults["betas"] == (0.8, 0.9)


@pytest.mark.parametrize(
    ("cfg", "message"),
    [
        ({"type": "SGD", "lr": 0.1, "momentun": 0.9}, "unknown key 'momentun'.*'momentum'"),
        ({"type": "SDG", "lr": 0.1}, "unknown optimizer type 'SDG'.*'SGD'"),
        ({"type": "Adam", "lr": 0.1, "momentum": 0.9}, "unknown key 'momentum'"),
        ({"type": "SGD", "lr": 0.1, "norm_decay_mul": 0.0}, "'norm_decay_mult'"),
        ({"type": "SGD", "momentum": 0.9}, "needs a learning rate"),
    ],
)
def test_config_mistakes_are_named(cfg, message):
    with pytest.raises(ConfigError, match=message):
        build_optimizer(_model(), cfg)


def test_fully_frozen_model_is_an_error():
    model = _model().requires_grad_(False)
    with pytest.raises(ConfigError, match="no trainable parameters"):
        build_optimizer(model, {"type": "SGD", "lr": 0.1})
