"""Balanced Feature Pyramid (Libra R-CNN, Pang et al., 2019): every level gets the same refined
summary of all levels."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Literal

import torch.nn.functional as F
from torch import Tensor, nn

from detbox.errors import ConfigError
from detbox.models.layers.non_local import NonLocal2d
from detbox.models.layers.norm import build_norm
from detbox.registry import MODELS
from detbox.typecheck import Positive, Range

__all__ = ["BFP"]

RefineType = Literal["non_local", "conv"]


@MODELS.register
class BFP(nn.Module):
    """Gather the pyramid at one level, refine it, scatter it back and add it to every level.

    Gather: finer levels are max-pooled, coarser ones nearest-upsampled to the size of level
    ``refine_level``, and averaged. Refine: a non-local block (the paper's choice) or a 3x3 conv.
    Scatter: the refined map is resized back to each level (upsampled for the finer levels,
    max-pooled for the coarser ones) and added to it as a residual. Channels and sizes are
    unchanged, so it composes after an FPN (``NeckSequence``).

    Args:
        in_channels: channels of every level (the FPN's ``out_channels``); also the output's.
        num_levels: levels in (and out).
        refine_level: the level the pyramid is gathered at (2: P4 of P2-P6).
        refine_type: ``'non_local'``, ``'conv'``, or None (no refinement).
        norm: normalization inside the refinement (e.g. ``'GN'``), or None.
    """

    def __init__(
        self,
        *,
        in_channels: Annotated[int, Positive] = 256,
        num_levels: Annotated[int, Positive] = 5,
        refine_level: Annotated[int, Range(ge=0)] = 2,
        refine_type: RefineType | None = "non_local",
        norm: str | None = None,
    ) -> None:
        super().__init__()
        if refine_level >= num_levels:
            raise ConfigError(
                f"BFP refine_level={refine_level} must be below num_levels={num_levels}")
        self.in_channels = in_channels
        self.out_channels = in_channels
        self.num_levels = num_levels
        self.refine_level = refine_level
        if refine_type == "non_local":
            self.refine = NonLocal2d(in_channels=in_channels, reduction=1, use_scale=False,
                                     norm=norm)
        elif refine_type == "conv":
            conv = nn.Conv2d(in_channels, in_channels, 3, padding=1, bias=norm is None)
            nn.init.kaiming_uniform_(conv.weight, a=1)
            if conv.bias is not None:
                nn.init.zeros_(conv.bias)
            self.refine = nn.Sequential(conv, build_norm(norm, in_channels)) if norm else conv
        elif refine_type is None:
            self.refine = nn.Identity()
        else:
            raise ConfigError(
                f"BFP refine_type must be 'non_local', 'conv' or None, got {refine_type!r}")

    def forward(self, feats: Sequence[Tensor]) -> list[Tensor]:
        """``num_levels`` maps (B, C, H_l, W_l), finest first -> the same shapes, balanced."""
        if len(feats) != self.num_levels:
            raise ValueError(f"BFP expects {self.num_levels} levels, got {len(feats)}")
        size = feats[self.refine_level].shape[-2:]
        gathered = [
            F.adaptive_max_pool2d(x, size) if i < self.refine_level
            else F.interpolate(x, size=size, mode="nearest")
            for i, x in enumerate(feats)
        ]
        balanced = self.refine(sum(gathered) / len(gathered))
        outs = []
        for i, x in enumerate(feats):
            if i < self.refine_level:
                residual = F.interpolate(balanced, size=x.shape[-2:], mode="nearest")
            else:
                residual = F.adaptive_max_pool2d(balanced, x.shape[-2:])
            outs.append(x + residual)
        return outs
