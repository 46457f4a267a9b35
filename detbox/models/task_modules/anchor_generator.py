"""Dense anchors tiled over every feature level."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from detbox.errors import ConfigError
from detbox.registry import TASK_UTILS

__all__ = ["AnchorGenerator"]


@TASK_UTILS.register
class AnchorGenerator:
    """Anchors of several sizes and aspect ratios at every location of every level.

    Sizes come either from strides and octave scales (RetinaNet paper: base sizes
    ``stride * octave_base_scale * 2**(i / scales_per_octave)``), from explicit relative
    ``scales`` (``stride * scale``, e.g. ``scales=(8,)`` for the Faster R-CNN RPN), or from explicit
    absolute ``sizes`` per level. ``round_base=True`` rounds the zero-centred base anchors to
    integers, which together with ``sizes`` reproduces torchvision's ``AnchorGenerator``.

    Args:
        strides: feature stride of each level, in pixels.
        ratios: aspect ratios ``h / w``; the anchor area stays ``size**2``.
        octave_base_scale: anchor size relative to the stride at the first octave step.
        scales_per_octave: sizes per level, spaced by ``2**(1 / scales_per_octave)``.
        scales: explicit sizes relative to the stride, same for every level (overrides octaves).
        sizes: explicit absolute sizes per level, ``len(sizes) == len(strides)`` (overrides all).
        round_base: round base anchor corners to integers (torchvision's behaviour).
        center_offset: anchor centre within a cell, in strides (0: the cell's top-left corner,
            as torchvision and MMDetection v2+; 0.5: the cell centre).
        strides_from_sizes: torchvision's rule: each level's (y, x) stride is the padded image
            size // the feature size, the padded size being the first level's size times its
            stride. It equals ``strides`` when the padded size is a multiple of the coarsest
            stride; otherwise (e.g. padding to 32 with a stride-64 level) it moves that level's
            anchors, which a model trained by torchvision expects.
    """

    def __init__(
        self,
        *,
        strides: Sequence[int],
        ratios: Sequence[float] = (0.5, 1.0, 2.0),
        octave_base_scale: float = 4.0,
        scales_per_octave: int = 3,
        scales: Sequence[float] | None = None,
        sizes: Sequence[Sequence[float]] | None = None,
        round_base: bool = False,
        center_offset: float = 0.0,
        strides_from_sizes: bool = False,
    ) -> None:
        self.strides = [int(s) for s in strides]
        self.ratios = [float(r) for r in ratios]
        self.round_base = round_base
        self.center_offset = float(center_offset)
        self.strides_from_sizes = strides_from_sizes
        if sizes is not None:
            if len(sizes) != len(self.strides):
                raise ConfigError(
                    f"AnchorGenerator got {len(sizes)} size lists for {len(self.strides)} strides"
                )
            self.sizes = [[float(s) for s in level] for level in sizes]
        else:
            if scales is None:
                scales = [octave_base_scale * 2 ** (i / scales_per_octave)
                          for i in range(scales_per_octave)]
            self.sizes = [[stride * float(s) for s in scales] for stride in self.strides]
        if len({len(level) for level in self.sizes}) != 1:
            raise ConfigError("AnchorGenerator needs the same number of sizes on every level")
        self.base_anchors = [self._base_anchors(level) for level in self.sizes]

    @property
    def num_levels(self) -> int:
        return len(self.strides)

    @property
    def num_anchors(self) -> int:
        """Anchors per location (the same on every level, so one head can serve all)."""
        return len(self.ratios) * len(self.sizes[0])

    def _base_anchors(self, sizes: list[float]) -> Tensor:
        """(A, 4) anchors centred on the origin, ratio-major: index ``ratio_i * S + size_j``."""
        sizes_t = torch.tensor(sizes, dtype=torch.float32)
        h_ratios = torch.sqrt(torch.tensor(self.ratios, dtype=torch.float32))
        w_ratios = 1 / h_ratios
        ws = (w_ratios[:, None] * sizes_t[None, :]).reshape(-1)
        hs = (h_ratios[:, None] * sizes_t[None, :]).reshape(-1)
        base = torch.stack([-ws, -hs, ws, hs], dim=1) / 2
        return base.round() if self.round_base else base

    def grid_anchors(
        self, feature_sizes: Sequence[Sequence[int]], device: torch.device | str = "cpu"
    ) -> list[Tensor]:
        """Anchors of every level in image pixels.

        Args:
            feature_sizes: (H, W) of each level's feature map.
            device: where the anchors are made.

        Returns:
            One (H * W * A, 4) float32 xyxy tensor per level, location-major: row
            ``(y * W + x) * A + a`` is anchor ``a`` at cell ``(y, x)``.
        """
        if len(feature_sizes) != self.num_levels:
            raise ValueError(
                f"AnchorGenerator has {self.num_levels} levels, "
                f"got {len(feature_sizes)} feature sizes"
            )
        sizes = [(int(size[0]), int(size[1])) for size in feature_sizes]
        strides = [(stride, stride) for stride in self.strides]
        if self.strides_from_sizes:
            padded_h, padded_w = sizes[0][0] * self.strides[0], sizes[0][1] * self.strides[0]
            strides = [(padded_h // h, padded_w // w) for h, w in sizes]
        return [
            self._level_anchors(base, stride, size, device)
            for base, stride, size in zip(self.base_anchors, strides, sizes)
        ]

    def _level_anchors(
        self, base: Tensor, stride: tuple[int, int], size: tuple[int, int],
        device: torch.device | str,
    ) -> Tensor:
        (height, width), (stride_y, stride_x) = size, stride
        shift_x = (torch.arange(width, dtype=torch.float32, device=device) * stride_x
                   + self.center_offset * stride_x)
        shift_y = (torch.arange(height, dtype=torch.float32, device=device) * stride_y
                   + self.center_offset * stride_y)
        grid_y, grid_x = torch.meshgrid(shift_y, shift_x, indexing="ij")
        shifts = torch.stack([grid_x, grid_y, grid_x, grid_y], dim=-1).reshape(-1, 1, 4)
        return (shifts + base.to(device).reshape(1, -1, 4)).reshape(-1, 4)
