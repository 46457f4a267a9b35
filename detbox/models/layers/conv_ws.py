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

from detbox.models.layers.conv_replacement import replacement_conv
from detbox.registry import MODELS
from detbox.typecheck import Positive

__all__ = ["ConvWS2d", "conv_like", "plain_conv_from_ws", "standardize_weight"]

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
    return replacement_conv(
        conv, conv_cfg, base=nn.Conv2d, path=path, key="conv_cfg", noun="the conv",
        replacer="conv_cfg", kind="a Conv2d layer", hint="use 'ConvWS'",
    )


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
