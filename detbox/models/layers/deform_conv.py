"""Deformable convolutions that predict their own offsets (Dai et al., 2017; Zhu et al., 2019).

A deformable conv samples its k x k input points at learned fractional offsets from the regular
grid. Here the offsets (and, for v2, the per-point modulation masks) come from a plain conv of the
same geometry over the same input, ``conv_offset``, initialised to zero as in the papers: a
freshly built layer samples the regular grid and computes exactly the plain convolution, so a
pretrained plain conv's weight can be loaded into ``weight`` (same key, same shape) and training
starts from the pretrained network.

The sampling kernel is ``torchvision.ops.deform_conv2d``. The modules keep ``nn.Conv2d``'s
``_conv_forward(x, weight, bias)`` hook, so code that rescales a conv's weight before running it
(frozen BN folded into the conv while training, :mod:`detbox.models.layers.frozen_bn_conv`) and
BN folding for inference work on them as they do on a plain conv.

Offsets whose input is something else (Guided Anchoring's shape map, RepPoints' point sets) are
computed by those heads, which call ``DeformConv2d`` with them directly.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

import torch
from torch import Tensor, nn
from torchvision.ops import DeformConv2d, deform_conv2d

from detbox.errors import ConfigError
from detbox.models.layers.conv_replacement import replacement_conv
from detbox.registry import MODELS
from detbox.typecheck import Positive

__all__ = ["DeformConv", "ModulatedDeformConv", "deformable_conv_names", "deformable_like"]


def _zero_offset_conv(in_channels: int, out_channels: int, kernel_size: int, stride: int,
                      padding: int, dilation: int) -> nn.Conv2d:
    """The conv predicting offsets (and masks) at the deformable conv's output positions,
    initialised to zero so the layer starts as a plain convolution."""
    conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding,
                     dilation=dilation, bias=True)
    nn.init.zeros_(conv.weight)
    nn.init.zeros_(conv.bias)
    return conv


def _check_groups(in_channels: int, deform_groups: int) -> None:
    if in_channels % deform_groups:
        raise ConfigError(f"deformable conv: deform_groups={deform_groups} must divide "
                          f"in_channels={in_channels}")


@MODELS.register(name="DCN")
class DeformConv(DeformConv2d):
    """Deformable convolution v1 (``dict(type="DCN")``): offsets from a zero-initialised conv.

    Args:
        in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias: as for
            ``nn.Conv2d`` (square kernels).
        deform_groups: channel groups with their own offsets (1 in the paper's backbones).

    Shapes: (B, in_channels, H, W) -> (B, out_channels, H', W') with ``nn.Conv2d``'s H', W'.
    ``conv_offset`` outputs (B, 2 * deform_groups * k * k, H', W'): a (dy, dx) pair per group
    and kernel point, the layout ``deform_conv2d`` reads.
    """

    def __init__(
        self,
        *,
        in_channels: Annotated[int, Positive],
        out_channels: Annotated[int, Positive],
        kernel_size: Annotated[int, Positive] = 3,
        stride: Annotated[int, Positive] = 1,
        padding: int = 1,
        dilation: Annotated[int, Positive] = 1,
        groups: Annotated[int, Positive] = 1,
        deform_groups: Annotated[int, Positive] = 1,
        bias: bool = False,
    ) -> None:
        _check_groups(in_channels, deform_groups)
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=padding,
                         dilation=dilation, groups=groups, bias=bias)
        self.deform_groups = deform_groups
        self.conv_offset = _zero_offset_conv(in_channels, 2 * deform_groups * kernel_size**2,
                                             kernel_size, stride, padding, dilation)

    def _conv_forward(self, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        """The deformable conv of (B, C, H, W) ``x`` with the given weight and bias."""
        return deform_conv2d(x, self.conv_offset(x), weight, bias, stride=self.stride,
                             padding=self.padding, dilation=self.dilation)

    def forward(self, x: Tensor) -> Tensor:  # type: ignore[override]
        return self._conv_forward(x, self.weight, self.bias)


@MODELS.register(name="DCNv2")
class ModulatedDeformConv(DeformConv2d):
    """Modulated deformable convolution, DCN v2 (``dict(type="DCNv2")``).

    Each sampled point is also scaled by ``mask_gain * sigmoid(m)``, ``m`` predicted with the
    offsets. With the zero-initialised ``conv_offset`` the masks start at ``mask_gain / 2``: the
    default gain 1 is the paper's (and MMDetection's) convention, whose masks start at 0.5 (half
    the replaced conv's output); ``mask_gain=2`` makes the layer start exactly as the plain conv
    it replaces.

    Args:
        in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias: as for
            ``nn.Conv2d`` (square kernels).
        deform_groups: channel groups with their own offsets and masks.
        mask_gain: the masks' upper bound.

    Shapes: (B, in_channels, H, W) -> (B, out_channels, H', W'). ``conv_offset`` outputs
    (B, 3 * deform_groups * k * k, H', W'): the offsets (as for ``DeformConv``), then one mask
    logit per group and kernel point.
    """

    def __init__(
        self,
        *,
        in_channels: Annotated[int, Positive],
        out_channels: Annotated[int, Positive],
        kernel_size: Annotated[int, Positive] = 3,
        stride: Annotated[int, Positive] = 1,
        padding: int = 1,
        dilation: Annotated[int, Positive] = 1,
        groups: Annotated[int, Positive] = 1,
        deform_groups: Annotated[int, Positive] = 1,
        mask_gain: Annotated[float, Positive] = 1.0,
        bias: bool = False,
    ) -> None:
        _check_groups(in_channels, deform_groups)
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=padding,
                         dilation=dilation, groups=groups, bias=bias)
        self.deform_groups = deform_groups
        self.mask_gain = float(mask_gain)
        self.conv_offset = _zero_offset_conv(in_channels, 3 * deform_groups * kernel_size**2,
                                             kernel_size, stride, padding, dilation)

    def _conv_forward(self, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        """The modulated deformable conv of (B, C, H, W) ``x`` with the given weight and bias."""
        points = self.deform_groups * self.kernel_size[0] * self.kernel_size[1]
        offset, mask_logits = self.conv_offset(x).split([2 * points, points], dim=1)
        mask = torch.sigmoid(mask_logits) * self.mask_gain
        return deform_conv2d(x, offset, weight, bias, stride=self.stride, padding=self.padding,
                             dilation=self.dilation, mask=mask)

    def forward(self, x: Tensor) -> Tensor:  # type: ignore[override]
        return self._conv_forward(x, self.weight, self.bias)


def deformable_like(conv: nn.Conv2d, dcn: Mapping[str, Any], *, path: str | None = None
                    ) -> nn.Module:
    """A deformable conv (``dcn``: ``dict(type="DCN" | "DCNv2", deform_groups=...)``) with
    ``conv``'s geometry and a copy of its weight (and bias), to put in ``conv``'s place.

    Raises:
        ConfigError: ``dcn`` sets a geometry key (channels, stride, ...), which always come from
            the conv it replaces, or an unknown key / type (named by the registry).
    """
    return replacement_conv(
        conv, dcn, base=DeformConv2d, path=path, key="dcn", noun="a deformable conv",
        replacer="a deformable conv", kind="a deformable conv", hint="use 'DCN' or 'DCNv2'",
    )


def deformable_conv_names(module: nn.Module) -> list[str]:
    """Names (as in ``named_modules``) of the deformable convs inside ``module`` (the exported
    ``--backend`` runtimes do not take them)."""
    return [name for name, child in module.named_modules() if isinstance(child, DeformConv2d)]
