"""Non-local block (Wang et al., 2018): every position attends to every other position."""

from __future__ import annotations

from typing import Literal, get_args

import torch
from torch import Tensor, nn

from detbox.models.layers.norm import build_norm
from detbox.registry import MODELS

__all__ = ["NonLocal2d"]

NonLocalMode = Literal["embedded_gaussian", "dot_product"]
_MODES = get_args(NonLocalMode)


@MODELS.register
class NonLocal2d(nn.Module):
    """A residual self-attention block over the H x W positions of a feature map.

    ``y_i = sum_j f(x_i, x_j) g(x_j) / C(x)`` is mixed back by a 1x1 conv whose output starts at
    zero, so inserting the block into a pretrained backbone leaves it unchanged at first. The
    paper adds such blocks to ResNet's res4 (C4) stage of Mask R-CNN.

    Args:
        in_channels: channels of the input (and output).
        reduction: the attention runs in ``in_channels // reduction`` channels.
        mode: ``'embedded_gaussian'`` (softmax of ``theta(x_i) . phi(x_j)``) or
            ``'dot_product'`` (the same product divided by the number of positions).
        use_scale: divide the embedded-gaussian logits by ``sqrt(inner channels)``.
        norm: normalization after the output conv (e.g. ``'BN'``, ``'GN'``), or None.
    """

    def __init__(
        self,
        *,
        in_channels: int,
        reduction: int = 2,
        mode: NonLocalMode = "embedded_gaussian",
        use_scale: bool = True,
        norm: str | None = None,
    ) -> None:
        super().__init__()
        if mode not in _MODES:
            raise ValueError(f"NonLocal2d mode must be one of {_MODES}, got '{mode}'")
        self.mode = mode
        self.use_scale = use_scale
        self.inter_channels = max(in_channels // reduction, 1)
        self.theta = nn.Conv2d(in_channels, self.inter_channels, 1)
        self.phi = nn.Conv2d(in_channels, self.inter_channels, 1)
        self.g = nn.Conv2d(in_channels, self.inter_channels, 1)
        out_conv = nn.Conv2d(self.inter_channels, in_channels, 1, bias=norm is None)
        self.out = nn.Sequential(out_conv, build_norm(norm, in_channels)) if norm else out_conv
        for conv in (self.theta, self.phi, self.g):
            nn.init.normal_(conv.weight, std=0.01)
            nn.init.zeros_(conv.bias)
        last = self.out[-1] if norm else self.out
        nn.init.zeros_(last.weight)
        if getattr(last, "bias", None) is not None:
            nn.init.zeros_(last.bias)

    def forward(self, x: Tensor) -> Tensor:
        """(B, C, H, W) -> (B, C, H, W), ``x`` plus the attention-weighted context."""
        batch, _, height, width = x.shape
        theta = self.theta(x).flatten(2).transpose(1, 2)  # (B, HW, C')
        phi = self.phi(x).flatten(2)  # (B, C', HW)
        g = self.g(x).flatten(2).transpose(1, 2)  # (B, HW, C')
        affinity = torch.bmm(theta, phi)  # (B, HW, HW)
        if self.mode == "embedded_gaussian":
            if self.use_scale:
                affinity = affinity / self.inter_channels**0.5
            affinity = affinity.softmax(dim=-1)
        else:
            affinity = affinity / affinity.shape[-1]
        y = torch.bmm(affinity, g).transpose(1, 2).reshape(batch, self.inter_channels, height,
                                                           width)
        return x + self.out(y)
