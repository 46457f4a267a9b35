"""Building a conv of another type in place of a plain ``nn.Conv2d`` (deformable, weight-
standardized, ...), with the replaced conv's geometry and a copy of its weights."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from detbox.errors import ConfigError
from detbox.registry import MODELS

__all__ = ["replacement_conv"]

# Set by the conv being replaced, never by the replacement's config.
_GEOMETRY = ("in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation",
             "groups", "bias")


def replacement_conv(
    conv: nn.Conv2d, cfg: Mapping[str, Any], *, base: type, path: str | None, key: str,
    noun: str, replacer: str, kind: str, hint: str,
) -> nn.Module:
    """A ``MODELS`` layer of ``cfg['type']`` (a subclass of ``base``) with ``conv``'s geometry
    and a copy of its weight (and bias), to put in ``conv``'s place.

    Args:
        conv: the square, zero-padded conv to replace.
        cfg: the replacement's config, without geometry keys.
        base: the class the replacement's type must derive from.
        path, key: how messages name ``cfg`` (``path``, else ``key``).
        noun, replacer, kind, hint: the wording of the three errors (what takes the geometry,
            what replaces square convs, what the type must be, which types to use).

    Raises:
        ConfigError: ``cfg`` sets a geometry key, names a type that is not a ``base``, or
            ``conv`` is not square and zero-padded.
    """
    fixed = sorted(set(_GEOMETRY) & set(cfg))
    if fixed:
        raise ConfigError(f"{path or key} sets {', '.join(fixed)}: {noun} takes its "
                          "geometry from the conv it replaces; leave them out")
    if len(set(conv.kernel_size)) != 1 or conv.padding_mode != "zeros":
        raise ConfigError(f"{replacer} replaces square, zero-padded convs, not {conv}")
    target = cfg.get("type")
    factory = MODELS.get(target) if isinstance(target, str) else target
    if not (isinstance(factory, type) and issubclass(factory, base)):
        raise ConfigError(f"{path or key}: type {target!r} is not {kind} ({hint})")
    layer = MODELS.build(
        cfg, path=path, in_channels=conv.in_channels, out_channels=conv.out_channels,
        kernel_size=conv.kernel_size[0], stride=conv.stride[0], padding=conv.padding[0],
        dilation=conv.dilation[0], groups=conv.groups, bias=conv.bias is not None,
    )
    with torch.no_grad():
        layer.weight.copy_(conv.weight)
        if conv.bias is not None:
            layer.bias.copy_(conv.bias)
    return layer
