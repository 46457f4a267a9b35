"""A config expanded with the constructors' defaults: every setting a built model would use.

``expand_defaults`` walks a config and, for each dict whose ``type`` names a registered
component, adds every constructor keyword the dict leaves out with its default value. Defaults
that are themselves components (``loss_cls=MappingProxyType(dict(type='FocalLoss', ...))``) are
expanded in turn, so two configs that build the same model expand to the same dict even when one
spells out the code's defaults and the other omits them. Values the detector derives at build
time (an FPN's ``in_channels`` from the backbone) are recorded too.

Used to prove that a shorter config still means the same model, and to print a config in full.
"""

from __future__ import annotations

import dataclasses
import inspect
import typing
from collections.abc import Callable, Mapping
from typing import Any

from detbox.config import config_to_jsonable

__all__ = ["expand_defaults", "resolve_component"]


def _registries() -> tuple:
    import detbox.data  # noqa: F401  (registers datasets and transforms)
    import detbox.models  # noqa: F401  (registers every model component)
    from detbox.registry import DATASETS, MODELS, TASK_UTILS, TRANSFORMS

    return MODELS, TASK_UTILS, DATASETS, TRANSFORMS


def resolve_component(node: Mapping) -> Callable[..., Any] | None:
    """The class (or factory) a ``dict(type=...)`` names in any registry, else None."""
    target = node.get("type")
    if isinstance(target, str):
        for registry in _registries():
            if target in registry:
                return registry.get(target)
        return None
    return target if callable(target) else None


def expand_defaults(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """``cfg`` with every registered component's omitted keywords set to their defaults.

    Args:
        cfg: a loaded config (``load_config``); ``_filename`` is left out.

    Returns:
        Plain JSON types: tuples become lists, classes their names, mapping proxies dicts.
        Sections that are not components (``optimizer``, ``train_cfg``...) are copied as they are.
    """
    expanded = {k: _expand(v) for k, v in cfg.items() if k != "_filename"}
    return config_to_jsonable(expanded)


def _expand(value: Any) -> Any:
    if isinstance(value, Mapping):
        node = dict(value)
        factory = resolve_component(node) if "type" in node else None
        if factory is not None:
            _fill_defaults(factory, node)
            _fill_derived(factory, node)
        return {k: _expand(v) for k, v in node.items()}
    if isinstance(value, (list, tuple)):
        return [_expand(v) for v in value]
    return value


def _fill_defaults(factory: Callable[..., Any], node: dict) -> None:
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return
    settings = _settings_classes(factory)
    for name, param in params.items():
        if param.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
            continue
        if name not in node and param.default is not inspect.Parameter.empty:
            node[name] = param.default
        if name in settings and isinstance(node.get(name), Mapping) and "type" not in node[name]:
            node[name] = _settings_defaults(settings[name], node[name])


def _settings_classes(factory: Callable[..., Any]) -> dict[str, type]:
    """Parameters annotated with a dataclass (e.g. ``ProposalSettings``) that a dict may give."""
    target = factory.__init__ if inspect.isclass(factory) else factory
    try:
        hints = typing.get_type_hints(target)
    except Exception:  # annotations that do not evaluate: no settings classes to expand
        return {}
    found = {}
    for name, hint in hints.items():
        for arg in (hint, *typing.get_args(hint)):
            if inspect.isclass(arg) and dataclasses.is_dataclass(arg):
                found[name] = arg
    return found


def _settings_defaults(cls: type, given: Mapping) -> dict:
    full = {}
    for field in dataclasses.fields(cls):
        if field.default is not dataclasses.MISSING:
            full[field.name] = field.default
    return {**full, **given}


def _fill_derived(factory: Callable[..., Any], node: dict) -> None:
    """Record what a detector derives when it builds: the neck's ``in_channels``."""
    from detbox.models.detectors.base import BaseDetector, neck_in_channels_missing

    if not (inspect.isclass(factory) and issubclass(factory, BaseDetector)):
        return
    neck = node.get("neck")
    if not isinstance(neck, Mapping) or not neck_in_channels_missing(neck):
        return
    node["neck"] = {**neck, "in_channels": _backbone_out_channels(node["backbone"])}


def _backbone_out_channels(backbone: Mapping | Any) -> list[int]:
    import torch

    from detbox.registry import MODELS

    with torch.device("meta"):  # shapes only: no memory, no initialization cost
        module = MODELS.build(backbone)
    return list(module.out_channels)
