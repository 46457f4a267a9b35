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
from detbox.typecheck import check_values

__all__ = ["OPTIMIZERS", "build_optimizer", "param_groups", "scale_lr"]

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


def _check_optimizer_values(cls: type, cfg: Mapping[str, Any]) -> None:
    """One line for a value of the wrong type (``lr='abc'``) or range (``lr=-1``)."""
    where = f"optimizer '{cls.__name__}'"
    check_values(cls, {k: v for k, v in cfg.items() if k not in _ENGINE_KEYS}, where,
                 path="optimizer")
    for key in ("lr", "weight_decay", *_ENGINE_KEYS):
        value = cfg.get(key)
        if value is None and key in _ENGINE_KEYS:
            continue
        if key in cfg and (isinstance(value, bool) or not isinstance(value, (int, float))
                           or value < 0):
            raise ConfigError(f"{where} key '{key}' (optimizer.{key}): expected a number >= 0, "
                              f"got {value!r} ({type(value).__name__})")


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
    _check_optimizer_values(cls, cfg)
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


def scale_lr(
    optimizer_cfg: Mapping[str, Any],
    auto_scale_lr: Mapping[str, Any] | None,
    *,
    batch_per_process: int | None,
    world_size: int,
    accumulate_steps: int = 1,
) -> tuple[dict[str, Any], str | None]:
    """Apply the linear scaling rule: the LR grows with the total batch of one optimizer step.

    A config's ``lr`` is tuned for ``base_batch_size`` images per step (16 for most COCO
    recipes: 8 GPUs x 2 images). Training with another total batch, ``batch_per_process x
    world_size x accumulate_steps``, multiplies ``lr`` by ``total / base_batch_size``.

    Args:
        optimizer_cfg: the optimizer config; a copy is returned, the input is unchanged.
        auto_scale_lr: ``dict(base_batch_size=16, enable=True)``; None or ``enable=False``
            keeps ``lr``.
        batch_per_process: images per batch in one process (the loader's ``batch_size``).
        world_size: training processes.
        accumulate_steps: micro-batches per optimizer step.

    Returns:
        ``(optimizer_cfg, message)``: the message states the LR used and why, for the log;
        with scaling off and a total batch other than ``base_batch_size`` it also gives the LR
        ``--auto-scale-lr`` would use. None only when ``lr`` is missing.

    Raises:
        ConfigError: an unknown key, a missing or non-positive ``base_batch_size``, or an
            unknown batch size while scaling is enabled.
    """
    cfg = dict(optimizer_cfg)
    if not auto_scale_lr:
        if "lr" not in cfg:
            return cfg, None
        return cfg, (f"lr {cfg['lr']} as configured (the config states no "
                     "auto_scale_lr.base_batch_size, the total batch this lr was tuned for)")
    settings = dict(auto_scale_lr)
    for key in settings:
        if key not in ("base_batch_size", "enable"):
            raise ConfigError(f"auto_scale_lr got an unknown key '{key}'."
                              f"{_suggest(key, ['base_batch_size', 'enable'])} Valid keys: "
                              "base_batch_size, enable")
    base = settings.get("base_batch_size")
    if not isinstance(base, int) or isinstance(base, bool) or base < 1:
        raise ConfigError(f"auto_scale_lr.base_batch_size must be a positive integer, got {base!r}")
    if batch_per_process is None:
        raise ConfigError("auto_scale_lr needs the train loader's batch_size, which it lacks")
    if "lr" not in cfg:
        raise ConfigError("optimizer needs a learning rate: set 'lr'")
    total = batch_per_process * world_size * accumulate_steps
    how = (f"total batch {total} = {batch_per_process} per process x {world_size} process(es) x "
           f"{accumulate_steps} accumulation step(s)")
    old = float(cfg["lr"])
    scaled = old * total / base
    if not settings.get("enable", False):
        if total == base:
            return cfg, (f"auto_scale_lr off: lr {old:g} as configured, for the recipe's {base} "
                         f"images per step ({how})")
        return cfg, (f"auto_scale_lr off: lr {old:g} as configured; the recipe assumes {base} "
                     f"images per step, this run has {total} ({how}). To follow the batch, "
                     f"enable it (--auto-scale-lr): lr {scaled:g} = {old:g} x {total} / {base}")
    cfg["lr"] = scaled
    return cfg, (f"auto_scale_lr: lr {old:g} -> {scaled:g} by the linear scaling rule "
                 f"({how}; base_batch_size {base}): lr {scaled:g} = {old:g} x {total} "
                 f"(total batch) / {base} (base_batch_size)")
