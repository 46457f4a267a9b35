"""HRFPN: the pyramid of HRNetV2p ("High-Resolution Representations for Labeling Pixels and
Regions", Sun et al., 2019).

HRNet already mixes all resolutions inside the backbone, so the neck has no top-down pathway:
every branch is upsampled (bilinear) to the finest one, the maps are concatenated and reduced by
a 1x1 conv, and the pyramid is that one stride-4 map pooled by 1, 2, 4, 8, 16 (strides 4..64),
each level through its own 3x3 conv.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from detbox.errors import ConfigError
from detbox.models.layers.norm import build_norm
from detbox.registry import MODELS
from detbox.typecheck import Positive

__all__ = ["HRFPN"]

_POOLING = {"avg": F.avg_pool2d, "max": F.max_pool2d}


def _conv(in_ch: int, out_ch: int, kernel: int, norm: str | None) -> nn.Module:
    conv = nn.Conv2d(in_ch, out_ch, kernel, padding=kernel // 2, bias=norm is None)
    nn.init.kaiming_uniform_(conv.weight, a=1)
    if conv.bias is not None:
        nn.init.zeros_(conv.bias)
    return nn.Sequential(conv, build_norm(norm, out_ch)) if norm else conv


@MODELS.register
class HRFPN(nn.Module):
    """Concatenate the HRNet branches at stride 4, reduce, pool to ``num_outs`` levels.

    Args:
        in_channels: channels of each backbone branch, finest first (read from the backbone).
        out_channels: channels of every output level.
        num_outs: output levels; level ``k`` is the reduced map pooled by ``2**k``.
        pooling: ``'avg'`` (HRNetV2p) or ``'max'``.
        norm: optional norm after the reduction conv and the output convs (no conv bias then).
    """

    def __init__(
        self,
        *,
        in_channels: Sequence[Annotated[int, Positive]],
        out_channels: Annotated[int, Positive] = 256,
        num_outs: Annotated[int, Positive] = 5,
        pooling: Literal["avg", "max"] = "avg",
        norm: str | None = None,
    ) -> None:
        super().__init__()
        if pooling not in _POOLING:
            raise ConfigError(f"HRFPN pooling must be one of {sorted(_POOLING)}, got {pooling!r}")
        self.in_channels = list(in_channels)
        self.out_channels = out_channels
        self.num_outs = num_outs
        self.pooling = pooling
        self.reduction_conv = _conv(sum(self.in_channels), out_channels, 1, norm)
        self.fpn_convs = nn.ModuleList(
            _conv(out_channels, out_channels, 3, norm) for _ in range(num_outs))

    def fuse(self, feats: Sequence[Tensor]) -> Tensor:
        """Branches upsampled to the first one's size and concatenated: (B, sum C_i, H_0, W_0)."""
        size = feats[0].shape[-2:]
        ups = [feats[0]] + [F.interpolate(x, size=size, mode="bilinear", align_corners=False)
                            for x in feats[1:]]
        return torch.cat(ups, dim=1)

    def forward(self, feats: Sequence[Tensor]) -> list[Tensor]:
        """Map the branches (B, C_i, H/2**i, W/2**i), finest first, to ``num_outs`` maps
        (B, out_channels, H/2**k, W/2**k), k = 0..num_outs-1 (ceil for odd sizes: the pooling
        keeps partial windows)."""
        if len(feats) != len(self.in_channels):
            raise ValueError(f"HRFPN expects {len(self.in_channels)} input maps, got {len(feats)}")
        reduced = self.reduction_conv(self.fuse(feats))
        pool = _POOLING[self.pooling]
        levels = [reduced] + [pool(reduced, kernel_size=2**k, stride=2**k, ceil_mode=True)
                              for k in range(1, self.num_outs)]
        return [conv(level) for conv, level in zip(self.fpn_convs, levels)]
