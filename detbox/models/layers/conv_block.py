"""The conv -> norm -> ReLU block of RoI heads, with a configurable conv type (plain or
weight-standardized)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from torch import nn

from detbox.models.layers.conv_ws import conv_like
from detbox.models.layers.norm import build_norm
from detbox.registry import nested_path

__all__ = ["conv_norm_relu"]


def conv_norm_relu(in_ch: int, out_ch: int, norm: str | None,
                   conv_cfg: Mapping[str, Any] | None = None, *, path: str = "conv_cfg",
                   init: Callable[[nn.Conv2d], None] | None = None) -> nn.Sequential:
    """A 3x3 conv, the optional ``norm`` (the conv then has no bias), a ReLU.

    Args:
        in_ch, out_ch: channels in and out.
        norm: ``'GN'``, ``'BN'``, ... or None.
        conv_cfg: the conv's type, e.g. ``dict(type='ConvWS')``; None: a plain ``nn.Conv2d``.
        path: how error messages name ``conv_cfg`` when it carries no path of its own.
        init: called on the plain conv before it is replaced (the replacement copies its
            weights), e.g. a Kaiming init.

    Shapes: (R, in_ch, S, S) -> (R, out_ch, S, S).
    """
    conv = nn.Conv2d(in_ch, out_ch, 3, padding=1, bias=norm is None)
    if init is not None:
        init(conv)
    if conv_cfg is not None:
        conv = conv_like(conv, conv_cfg, path=nested_path(conv_cfg) or path)
    layers: list[nn.Module] = [conv]
    if norm:
        layers.append(build_norm(norm, out_ch))
    layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)
