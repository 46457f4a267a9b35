"""A neck: maps the backbone's list of feature maps to the list the head reads."""

from __future__ import annotations

from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from detbox.registry import MODELS


@MODELS.register
class ChannelMapper(nn.Module):
    """A 1x1 conv per level to ``out_channels``; extra coarser levels by stride-2 max pooling.

    Args:
        in_channels: channels of each input level, finest first.
        out_channels: channels of every output level.
        num_outs: output levels (at least ``len(in_channels)``).
    """

    def __init__(self, *, in_channels: Sequence[int], out_channels: int = 64,
                 num_outs: int = 4) -> None:
        super().__init__()
        self.lateral = nn.ModuleList(nn.Conv2d(c, out_channels, 1) for c in in_channels)
        self.num_outs = num_outs

    def forward(self, feats: Sequence[Tensor]) -> list[Tensor]:
        """``len(in_channels)`` maps -> ``num_outs`` maps of (B, out_channels, H_i, W_i)."""
        outs = [conv(x) for conv, x in zip(self.lateral, feats)]
        while len(outs) < self.num_outs:
            outs.append(F.max_pool2d(outs[-1], kernel_size=1, stride=2))
        return outs
