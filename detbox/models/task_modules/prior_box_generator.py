"""SSD's default boxes ("priors"): a few sizes and aspect ratios per location, per level."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from detbox.errors import ConfigError
from detbox.registry import TASK_UTILS

__all__ = ["SSDPriorGenerator"]


@TASK_UTILS.register
class SSDPriorGenerator:
    """Default boxes of SSD (Liu et al., 2016, section 2.2), sized relative to the image.

    Level ``k`` has scale ``s_k`` (a fraction of the image side); its priors per location are,
    in this order: a square of side ``s_k``, a square of side ``sqrt(s_k * s_{k+1})``, then for
    each ratio ``r`` of the level a ``(s_k * sqrt(r), s_k / sqrt(r))`` box and its transpose.
    Widths scale with the image width and heights with its height, as in torchvision's
    ``DefaultBoxGenerator``, whose prior order this keeps (converted weights depend on it).

    Args:
        aspect_ratios: per level, the ratios ``r >= 1`` added to the two squares
            (the paper: ``(2, 3)``; SSD300 uses ``(2,)`` on the first and last two levels).
        scales: ``L + 1`` explicit scales ``s_0 .. s_L`` (the last one only sizes the second
            square of the coarsest level); None derives them from the ratio range.
        min_ratio, max_ratio: without ``scales``, ``s_k`` is spaced linearly from ``min_ratio``
            to ``max_ratio`` over the L levels, and ``s_L = 1``.
        steps: per level, the distance between neighbouring prior centres in pixels (centre of
            cell ``i`` at ``(i + 0.5) * step``); None spreads the centres evenly over the image
            (``(i + 0.5) / feature_size`` of its side).
        clip: clamp the relative widths and heights to at most 1 (the image side).
    """

    def __init__(
        self,
        *,
        aspect_ratios: Sequence[Sequence[float]],
        scales: Sequence[float] | None = None,
        min_ratio: float = 0.15,
        max_ratio: float = 0.9,
        steps: Sequence[float] | None = None,
        clip: bool = True,
    ) -> None:
        self.aspect_ratios = [[float(r) for r in level] for level in aspect_ratios]
        num_levels = len(self.aspect_ratios)
        if scales is None:
            if num_levels > 1:
                step = (max_ratio - min_ratio) / (num_levels - 1)
                scales = [min_ratio + step * k for k in range(num_levels)] + [1.0]
            else:
                scales = [min_ratio, max_ratio]
        if len(scales) != num_levels + 1:
            raise ConfigError(f"SSDPriorGenerator needs {num_levels + 1} scales for "
                              f"{num_levels} levels, got {len(scales)}")
        if steps is not None and len(steps) != num_levels:
            raise ConfigError(f"SSDPriorGenerator got {len(steps)} steps for {num_levels} levels")
        self.scales = [float(s) for s in scales]
        self.steps = None if steps is None else [float(s) for s in steps]
        self.clip = clip
        self.base_sizes = [self._relative_sizes(k) for k in range(num_levels)]

    @property
    def num_levels(self) -> int:
        return len(self.aspect_ratios)

    @property
    def num_anchors(self) -> list[int]:
        """Priors per location on each level: ``2 + 2 * len(aspect_ratios[k])``."""
        return [2 + 2 * len(ratios) for ratios in self.aspect_ratios]

    def _relative_sizes(self, k: int) -> Tensor:
        """(A_k, 2) widths and heights of level ``k``'s priors, as fractions of the image."""
        s_k = self.scales[k]
        s_prime = math.sqrt(s_k * self.scales[k + 1])
        sizes = [(s_k, s_k), (s_prime, s_prime)]
        for ratio in self.aspect_ratios[k]:
            root = math.sqrt(ratio)
            sizes += [(s_k * root, s_k / root), (s_k / root, s_k * root)]
        wh = torch.tensor(sizes, dtype=torch.float32)
        return wh.clamp(0.0, 1.0) if self.clip else wh

    def grid_anchors(
        self, feature_sizes: Sequence[Sequence[int]], image_size: Sequence[int],
        device: torch.device | str = "cpu",
    ) -> list[Tensor]:
        """The priors of every level in image pixels.

        Args:
            feature_sizes: (H_l, W_l) of each level's feature map.
            image_size: (h, w) of the network input the priors are relative to.
            device: where the priors are made.

        Returns:
            One (H_l * W_l * A_l, 4) float32 xyxy tensor per level, location-major: row
            ``(y * W_l + x) * A_l + a`` is prior ``a`` at cell ``(y, x)``.
        """
        if len(feature_sizes) != self.num_levels:
            raise ValueError(f"SSDPriorGenerator has {self.num_levels} levels, "
                             f"got {len(feature_sizes)} feature sizes")
        height, width = float(image_size[0]), float(image_size[1])
        scale = torch.tensor([width, height], dtype=torch.float32, device=device)
        priors = []
        for k, size in enumerate(feature_sizes):
            rows, cols = int(size[0]), int(size[1])
            # centres as fractions of the image, like the sizes
            cells_x = width / self.steps[k] if self.steps is not None else float(cols)
            cells_y = height / self.steps[k] if self.steps is not None else float(rows)
            cx = (torch.arange(cols, dtype=torch.float32, device=device) + 0.5) / cells_x
            cy = (torch.arange(rows, dtype=torch.float32, device=device) + 0.5) / cells_y
            grid_y, grid_x = torch.meshgrid(cy, cx, indexing="ij")
            centres = torch.stack([grid_x, grid_y], dim=-1).reshape(-1, 1, 2)
            half = 0.5 * self.base_sizes[k].to(device)[None]
            boxes = torch.cat([(centres - half) * scale, (centres + half) * scale], dim=-1)
            priors.append(boxes.reshape(-1, 4))
        return priors

    def __repr__(self) -> str:
        return (f"SSDPriorGenerator(aspect_ratios={self.aspect_ratios}, scales={self.scales}, "
                f"steps={self.steps}, clip={self.clip})")
