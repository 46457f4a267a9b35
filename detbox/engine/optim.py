"""Build a torch optimizer from a config dict, with per-parameter weight-decay rules.

Detectors usually train without weight decay on normalization layers (it fights the scale the
layer learns) and sometimes without it on biases; ``norm_decay_mult`` and ``bias_decay_mult``
scale the decay of those parameters. Frozen parameters are never handed to the optimizer.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator, Mapping
from typing import Any

import torch
from torch import nn

from detbox.engine.dist import unwrap_model
from detbox.errors import ConfigError
from detbox.registry import closest_match

__all__ = ["OPTIMIZERS", "build_optimizer", "param_groups"]

OPTIMIZERS: dict[str, type[torch.optim.Optimizer]] = {
    "SGD": torch.optim.SGD,
    "Adam": torch.optim.Adam,
    "AdamW": torch.optim.AdamW,
}
_ENGINE_KEYS = ("norm_decay_mult", "bias_decay_mult")
_NORM_TYPES = (
    nn.modules.batchnorm._BatchNorm,
    nn.modules.instancenorm._InstanceNorm,
    nn.GroupNorm,
    nn.LayerNorm,
)


def _suggest(name: str, candidates: list[str]) -> str:
    match = closest_match(name, candidates)
    return f" Did you mean '{match}'?" if match else ""


def _optimizer_class(kind: Any) -> type[torch.optim.Optimizer]:
    if isinstance(kind, type) and issubclass(kind, torch.optim.Optimizer):
        return kind
    if kind not in OPTIMIZERS:
        raise ConfigError(
            f"unknown optimizer type {kind!r}.{_suggest(str(kind), list(OPTIMIZERS))} "
            f"Supported: {', '.join(OPTIMIZERS)}"
        )
    return OPTIMIZERS[kind]


def _accepted_keys(cls: type[torch.optim.Optimizer]) -> list[str]:
    params = inspect.signature(cls).parameters
    keyword_kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return [n for n, p in params.items() if n != "params" and p.kind in keyword_kinds]


def _is_norm(module: nn.Module) -> bool:
    # Custom norm layers (e.g. a frozen BatchNorm with trainable affine) follow the naming habit.
    return isinstance(module, _NORM_TYPES) or "Norm" in type(module).__name__


def _named_trainable(model: nn.Module) -> Iterator[tuple[str, nn.Module, str, nn.Parameter]]:
    """(module name, module, parameter name, parameter) for each trainable parameter, once."""
    seen: set[int] = set()
    for module_name, module in model.named_modules():
        for param_name, param in module.named_parameters(recurse=False):
            if not param.requires_grad or id(param) in seen:
                continue
            seen.add(id(param))
            yield module_name, module, param_name, param


def param_groups(
    model: nn.Module,
    weight_decay: float,
    norm_decay_mult: float | None = None,
    bias_decay_mult: float | None = None,
) -> list[dict[str, Any]]:
    """Trainable parameters grouped by their effective weight decay.

    A parameter of a normalization layer gets ``weight_decay * norm_decay_mult``; any other
    ``bias`` gets ``weight_decay * bias_decay_mult``; a multiplier of None leaves the decay as
    is. Each group also lists its parameters' qualified names under ``'names'``.
    """
    groups: dict[float, dict[str, Any]] = {}
    for module_name, module, param_name, param in _named_trainable(unwrap_model(model)):
        decay = weight_decay
        if _is_norm(module) and norm_decay_mult is not None:
            decay = weight_decay * norm_decay_mult
        elif param_name == "bias" and bias_decay_mult is not None:
            decay = weight_decay * bias_decay_mult
        group = groups.setdefault(decay, {"params": [], "names": [], "weight_decay": decay})
        group["params"].append(param)
        group["names"].append(f"{module_name}.{param_name}" if module_name else param_name)
    return list(groups.values())


def build_optimizer(model: nn.Module, cfg: Mapping[str, Any]) -> torch.optim.Optimizer:
    """Build ``cfg['type']`` over the model's trainable parameters.

    Args:
        model: the detector (a DDP wrapper is looked through).
        cfg: ``dict(type='SGD'|'Adam'|'AdamW' or an Optimizer class, lr=..., <the optimizer's
            own keyword arguments>, norm_decay_mult=None, bias_decay_mult=None)``.

    Raises:
        ConfigError: an unknown type or key (naming the closest valid one), no ``lr``, or a
            model without trainable parameters.
    """
    cfg = dict(cfg)
    cls = _optimizer_class(cfg.pop("type", "SGD"))
    accepted = _accepted_keys(cls)
    for key in cfg:
        if key not in accepted and key not in _ENGINE_KEYS:
            valid = accepted + list(_ENGINE_KEYS)
            raise ConfigError(
                f"optimizer '{cls.__name__}' got an unknown key '{key}'.{_suggest(key, valid)} "
                f"Valid keys: {', '.join(valid)}"
            )
    if "lr" not in cfg:
        raise ConfigError(f"optimizer '{cls.__name__}' needs a learning rate: set 'lr'")
    norm_mult = cfg.pop("norm_decay_mult", None)
    bias_mult = cfg.pop("bias_decay_mult", None)
    default_decay = inspect.signature(cls).parameters.get("weight_decay")
    weight_decay = cfg.pop("weight_decay", default_decay.default if default_decay else 0.0)
    groups = param_groups(model, float(weight_decay), norm_mult, bias_mult)
    if not groups:
        raise ConfigError("the model has no trainable parameters (all have requires_grad=False)")
    try:
        return cls(groups, weight_decay=weight_decay, **cfg)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"optimizer '{cls.__name__}': {exc}") from exc
