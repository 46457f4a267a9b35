"""Building the model a tool measures: from a checkpoint, or with random weights."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from typing import Any

import torch
from torch import nn

from detbox.apis.build import build_detector, fill_num_classes
from detbox.config import ConfigDict

__all__ = ["DEFAULT_NUM_CLASSES", "config_num_classes", "model_from_config"]

# COCO's: what a FLOPs or speed figure is usually quoted for when the config leaves it open.
DEFAULT_NUM_CLASSES = 80


def _values(node: Any, key: str) -> Iterator[Any]:
    if isinstance(node, Mapping):
        for k, v in node.items():
            if k == key:
                yield v
            yield from _values(v, key)
    elif isinstance(node, (list, tuple)):
        for v in node:
            yield from _values(v, key)


def config_num_classes(cfg: Mapping[str, Any]) -> int | None:
    """``num_classes`` as the config fixes it (top level or any head), or None."""
    found = [v for v in _values(cfg.get("model", {}), "num_classes") if v is not None]
    top = cfg.get("num_classes")
    return int(top) if top is not None else (int(found[0]) if found else None)


def model_from_config(
    cfg: ConfigDict,
    checkpoint: str | os.PathLike | None = None,
    device: torch.device | str = "cpu",
    num_classes: int | None = None,
) -> nn.Module:
    """The config's detector in eval mode: the checkpoint's weights, or random ones.

    Without a checkpoint the number of classes is ``num_classes``, else the config's, else
    :data:`DEFAULT_NUM_CLASSES`; class names are ``class_0``, ``class_1``, ...
    """
    from detbox.apis.inference import load_detector

    device = torch.device(device)
    if checkpoint is not None:
        return load_detector(cfg, checkpoint, device)
    count = num_classes or config_num_classes(cfg) or DEFAULT_NUM_CLASSES
    names = [f"class_{i}" for i in range(count)]
    fill_num_classes(cfg, names, source="the tool's --num-classes")
    model = build_detector(cfg.model, names, list(range(1, count + 1)))
    model.cfg = cfg
    return model.to(device).eval()
