"""The global context block of GCNet (Cao et al., "GCNet: Non-local Networks Meet
Squeeze-Excitation Networks and Beyond", 2019).

A non-local block computes an attention map per query position, but the maps it learns are
nearly the same for every query. GCNet keeps one map: a 1x1 conv scores every position, a
softmax over the positions turns the scores into weights, and their weighted sum of the features
is one global context vector per image. A bottleneck transform (1x1 conv to C * ratio channels,
LayerNorm, ReLU, 1x1 conv back to C) turns it into a per-channel term added to every position.
The last conv starts at zero, so a new block is the identity and a pretrained network it is
inserted into computes what it computed before.
"""

from __future__ import annotations

from typing import Annotated

import torch
from torch import Tensor, nn

from detbox.errors import ConfigError
from detbox.registry import MODELS
from detbox.typecheck import Positive, Range

__all__ = ["ContextBlock"]


@MODELS.register
class ContextBlock(nn.Module):
    """Global context block: attention pooling, bottleneck transform, add fusion.

    Args:
        in_channels: channels C of the input (set by the network it is plugged into).
        ratio: bottleneck width as a fraction of C (1/16 or 1/4 in the paper).

    Shapes: (B, C, H, W) -> (B, C, H, W).
    """

    def __init__(
        self,
        *,
        in_channels: Annotated[int, Positive],
        ratio: Annotated[float, Range(gt=0, le=1)] = 1 / 16,
    ) -> None:
        super().__init__()
        hidden = int(in_channels * ratio)
        if hidden < 1:
            raise ConfigError(f"ContextBlock: ratio={ratio} leaves no channels of {in_channels}")
        self.in_channels = in_channels
        self.ratio = ratio
        self.conv_mask = nn.Conv2d(in_channels, 1, kernel_size=1)
        self.channel_add = nn.Sequential(
            nn.Conv2d(in_channels, hidden, kernel_size=1),
            nn.LayerNorm([hidden, 1, 1]),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, in_channels, kernel_size=1),
        )
        nn.init.kaiming_normal_(self.conv_mask.weight, mode="fan_in", nonlinearity="relu")
        nn.init.zeros_(self.conv_mask.bias)
        nn.init.zeros_(self.channel_add[-1].weight)
        nn.init.zeros_(self.channel_add[-1].bias)

    def context(self, x: Tensor) -> Tensor:
        """(B, C, H, W) features -> (B, C, 1, 1) attention-weighted sum over the positions."""
        b, c, h, w = x.shape
        weights = torch.softmax(self.conv_mask(x).reshape(b, 1, h * w), dim=2)  # (B, 1, HW)
        pooled = torch.bmm(x.reshape(b, c, h * w), weights.transpose(1, 2))  # (B, C, 1)
        return pooled.reshape(b, c, 1, 1)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.channel_add(self.context(x))
