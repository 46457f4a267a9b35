"""Building a detector from a config, with ``num_classes`` taken from the dataset."""

from __future__ import annotations

import inspect
from collections.abc import Iterator, Mapping, MutableMapping
from typing import Any

from torch import nn

import detbox.models  # noqa: F401  (registers every model component)
from detbox.errors import ConfigError
from detbox.registry import MODELS, check_kwargs

__all__ = ["fill_num_classes", "build_detector", "check_section"]


def _component_type(node: Mapping) -> Any:
    target = node.get("type")
    if isinstance(target, str):
        return MODELS.get(target) if target in MODELS else None
    return target


def _accepts(factory: Any, key: str) -> bool:
    try:
        return key in inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return False


def _iter_components(node: Any, path: str) -> Iterator[tuple[str, MutableMapping]]:
    """Every dict with a ``type`` key under ``node``, with its dotted path."""
    if isinstance(node, MutableMapping):
        if "type" in node:
            yield path, node
        for key, value in node.items():
            yield from _iter_components(value, f"{path}.{key}")
    elif isinstance(node, (list, tuple)):
        for index, value in enumerate(node):
            yield from _iter_components(value, f"{path}.{index}")


def fill_num_classes(cfg: MutableMapping, class_names: list[str], source: str) -> int:
    """Set every head's ``num_classes`` from the dataset; a conflicting value is an error.

    Args:
        cfg: the whole config; ``cfg['model']`` is edited in place.
        class_names: the training dataset's classes, in label order.
        source: where the classes came from (named in errors, e.g. the annotation file).

    Returns:
        The number of classes.
    """
    num_classes = len(class_names)
    preview = ", ".join(class_names[:8]) + (", ..." if num_classes > 8 else "")
    top = cfg.get("num_classes")
    if top is not None and top != num_classes:
        raise ConfigError(
            f"num_classes = {top} in the config, but {source} has {num_classes} categories "
            f"({preview}). Remove num_classes to take it from the data, or set "
            f"class_names (top level) to the {top} classes you want."
        )
    for path, node in _iter_components(cfg["model"], "model"):
        factory = _component_type(node)
        if factory is None or not _accepts(factory, "num_classes"):
            continue
        current = node.get("num_classes")
        if current is None:
            node["num_classes"] = num_classes
        elif current != num_classes:
            raise ConfigError(
                f"{path}.num_classes = {current}, but {source} has {num_classes} categories "
                f"({preview}). Remove {path}.num_classes to take it from the data (count "
                "classes without background), or fix the dataset's categories."
            )
    return num_classes


def build_detector(model_cfg: Mapping, class_names: list[str], cat_ids: list[int]) -> nn.Module:
    """Build the detector and attach the dataset's label map as ``model.dataset_meta``."""
    model = MODELS.build(model_cfg, path="model")
    model.dataset_meta = {"class_names": list(class_names), "cat_ids": list(cat_ids)}
    return model


def check_section(section: Mapping | None, defaults: Mapping[str, Any], name: str) -> dict:
    """Merge a plain settings section over its defaults; an unknown key is an error."""
    section = dict(section or {})

    def accept(**kwargs: Any) -> None:  # a signature made of the known keys
        return None

    accept.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [inspect.Parameter(k, inspect.Parameter.KEYWORD_ONLY, default=v)
         for k, v in defaults.items()]
    )
    check_kwargs(accept, section, where=f"config section '{name}'")
    return {**defaults, **section}
