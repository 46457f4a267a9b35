"""A learnable scalar multiplier (one per FPN level in FCOS-like heads)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["Scale"]


class Scale(nn.Module):
    """``x * scale`` with a learnable scalar, so a head shared over levels can still regress
    each level's range of distances.

    Args:
        scale: initial value.
    """

    def __init__(self, scale: float = 1.0) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(float(scale)))

    def forward(self, x: Tensor) -> Tensor:
        return x * self.scale
