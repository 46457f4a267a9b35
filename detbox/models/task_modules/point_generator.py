"""Dense points (feature-map cell locations) on every level, the priors of anchor-free heads."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from detbox.registry import TASK_UTILS

__all__ = ["PointGenerator"]


@TASK_UTILS.register
class PointGenerator:
    """One point per feature-map cell of every level, in image pixels.

    Point ``(x, y)`` of a level with stride ``s`` sits at ``((x + offset) * s, (y + offset) * s)``.
    Rows are location-major (``y * W + x``), the order of ``dense_utils.flatten_level`` with one
    prior per location, so a head's flattened outputs line up with the points.

    Args:
        strides: feature stride of each level, in pixels; also the unit of the heads' per-level
            regression normalisation (``level_strides``).
        offset: point position within its cell, in strides (0.5: the cell centre, as FCOS in
            MMDetection; 0: the cell's top-left corner, as torchvision's FCOS).
        strides_from_sizes: torchvision's rule for where points sit: each level's (y, x) step
            is the padded image size // the feature size, the padded size being the first
            level's size times its stride (see ``AnchorGenerator``); the nominal ``strides``
            stay the normalisation unit.
    """

    def __init__(
        self,
        *,
        strides: Sequence[int] = (8, 16, 32, 64, 128),
        offset: float = 0.5,
        strides_from_sizes: bool = False,
    ) -> None:
        self.strides = [int(s) for s in strides]
        self.offset = float(offset)
        self.strides_from_sizes = strides_from_sizes

    @property
    def num_levels(self) -> int:
        return len(self.strides)

    def grid_points(
        self, feature_sizes: Sequence[Sequence[int]], device: torch.device | str = "cpu"
    ) -> list[Tensor]:
        """Points of every level.

        Args:
            feature_sizes: (H, W) of each level's feature map.
            device: where the points are made.

        Returns:
            One (H * W, 2) float32 ``(x, y)`` tensor per level, row ``y * W + x``.
        """
        if len(feature_sizes) != self.num_levels:
            raise ValueError(
                f"PointGenerator has {self.num_levels} levels, "
                f"got {len(feature_sizes)} feature sizes"
            )
        sizes = [(int(size[0]), int(size[1])) for size in feature_sizes]
        steps = [(stride, stride) for stride in self.strides]
        if self.strides_from_sizes:
            padded_h, padded_w = sizes[0][0] * self.strides[0], sizes[0][1] * self.strides[0]
            steps = [(padded_h // h, padded_w // w) for h, w in sizes]
        points = []
        for (height, width), (step_y, step_x) in zip(sizes, steps):
            xs = (torch.arange(width, dtype=torch.float32, device=device) + self.offset) * step_x
            ys = (torch.arange(height, dtype=torch.float32, device=device) + self.offset) * step_y
            grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
            points.append(torch.stack([grid_x.reshape(-1), grid_y.reshape(-1)], dim=1))
        return points

    def point_strides(self, points: Sequence[Tensor]) -> Tensor:
        """(sum N_l,) float32 nominal stride of every point of ``grid_points``' output."""
        return torch.cat([
            torch.full((len(level),), float(stride), device=level.device)
            for level, stride in zip(points, self.strides)
        ])
