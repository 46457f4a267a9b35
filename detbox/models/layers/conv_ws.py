"""Weight Standardization (Qiao et al., "Micro-Batch Training with Batch-Channel Normalization
and Weight Standardization", 2019).

A WS conv standardizes each filter before convolving: its weight, viewed per output channel over
(in_channels / groups, kh, kw), is shifted to mean 0 and divided by its standard deviation
(unbiased, plus ``eps``, the convention of the published GN+WS models). Paired with GroupNorm it
trains detectors with small per-GPU batches, and from scratch. The stored ``weight`` is the raw,
unstandardized parameter, so a plain conv's state dict loads into it key for key.

``ConvWS2d`` keeps ``nn.Conv2d``'s ``_conv_forward(x, weight, bias)`` hook for code that runs a
conv with a given weight; such code must pass :meth:`ConvWS2d.standardized_weight` (frozen BN
folded into the conv while training does, :mod:`detbox.models.layers.frozen_bn_conv`), and the
inference fast path turns WS convs back into plain convs holding the standardized weight
(:func:`plain_conv_from_ws`) before folding norms into them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

import torch
from torch import Tensor, nn

from detbox.errors import ConfigError
from detbox.registry import MODELS
from detbox.typecheck import Positive

__all__ = ["ConvWS2d", "conv_like", "plain_conv_from_ws", "standardize_weight"]

_GEOMETRY = ("in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation",
             "groups", "bias")


def standardize_weight(weight: Tensor, eps: float = 1e-5) -> Tensor:
    """(C_out, C_in/g, kh, kw) weight -> the same with each filter at mean 0 and std ~1."""
    flat = weight.reshape(weight.shape[0], -1)
    mean = flat.mean(dim=1).reshape(-1, 1, 1, 1)
    std = flat.std(dim=1).reshape(-1, 1, 1, 1)
    return (weight - mean) / (std + eps)


@MODELS.register(name="ConvWS")
class ConvWS2d(nn.Conv2d):
    """A convolution with a weight-standardized kernel (``dict(type="ConvWS")``).

    Args:
        in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias: as for
            ``nn.Conv2d`` (square kernels).
        eps: added to each filter's standard deviation (1e-5).

    Shapes: (B, in_channels, H, W) -> (B, out_channels, H', W') with ``nn.Conv2d``'s H', W'.
    """

    def __init__(
        self,
        *,
        in_channels: Annotated[int, Positive],
        out_channels: Annotated[int, Positive],
        kernel_size: Annotated[int, Positive] = 3,
        stride: Annotated[int, Positive] = 1,
        padding: int = 0,
        dilation: Annotated[int, Positive] = 1,
        groups: Annotated[int, Positive] = 1,
        bias: bool = True,
        eps: Annotated[float, Positive] = 1e-5,
    ) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=padding,
                         dilation=dilation, groups=groups, bias=bias)
        self.eps = float(eps)

    def standardized_weight(self) -> Tensor:
        """The kernel the convolution runs with: ``weight`` standardized per output channel."""
        return standardize_weight(self.weight, self.eps)

    def forward(self, x: Tensor) -> Tensor:
        return self._conv_forward(x, self.standardized_weight(), self.bias)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, eps={self.eps}"


def conv_like(conv: nn.Conv2d, conv_cfg: Mapping[str, Any], *, path: str | None = None
              ) -> nn.Conv2d:
    """A conv of type ``conv_cfg['type']`` (an ``nn.Conv2d`` subclass, e.g. ``'ConvWS'``) with
    ``conv``'s geometry and a copy of its weight (and bias), to put in ``conv``'s place.

    Raises:
        ConfigError: ``conv_cfg`` sets a geometry key, names a type that is not a Conv2d, or
            ``conv`` is not square and zero-padded.
    """
    fixed = sorted(set(_GEOMETRY) & set(conv_cfg))
    if fixed:
        raise ConfigError(f"{path or 'conv_cfg'} sets {', '.join(fixed)}: the conv takes its "
                          "geometry from the conv it replaces; leave them out")
    if len(set(conv.kernel_size)) != 1 or conv.padding_mode != "zeros":
        raise ConfigError(f"conv_cfg replaces square, zero-padded convs, not {conv}")
    target = conv_cfg.get("type")
    factory = MODELS.get(target) if isinstance(target, str) else target
    if not (isinstance(factory, type) and issubclass(factory, nn.Conv2d)):
        raise ConfigError(f"{path or 'conv_cfg'}: type {target!r} is not a Conv2d layer "
                          "(use 'ConvWS')")
    layer = MODELS.build(
        conv_cfg, path=path, in_channels=conv.in_channels, out_channels=conv.out_channels,
        kernel_size=conv.kernel_size[0], stride=conv.stride[0], padding=conv.padding[0],
        dilation=conv.dilation[0], groups=conv.groups, bias=conv.bias is not None,
    )
    with torch.no_grad():
        layer.weight.copy_(conv.weight)
        if conv.bias is not None:
            layer.bias.copy_(conv.bias)
    return layer


@torch.no_grad()
def plain_conv_from_ws(conv: ConvWS2d) -> nn.Conv2d:
    """A plain ``nn.Conv2d`` computing what ``conv`` computes (its standardized weight stored),
    for inference rewrites that read ``weight`` directly (BN folding, fused kernels)."""
    plain = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, stride=conv.stride,
                      padding=conv.padding, dilation=conv.dilation, groups=conv.groups,
                      bias=conv.bias is not None).to(conv.weight)
    plain.weight.copy_(conv.standardized_weight())
    if conv.bias is not None:
        plain.bias.copy_(conv.bias)
    plain.train(conv.training)
    plain.requires_grad_(conv.weight.requires_grad)
    return plain
