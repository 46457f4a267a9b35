"""Grid R-CNN's grid head (Lu et al., CVPR 2019; Grid R-CNN Plus, 2019): boxes from points.

Instead of regressing box deltas, the head predicts a heat map for each of 3x3 grid points
of the object (corners, edge midpoints, centre) and the box is read off the maps' maxima
(:class:`detbox.models.task_modules.grid_point_coder.GridPointCoder`).

Architecture (Grid R-CNN Plus defaults): 14x14 RoI features -> 8 3x3 convs (the first with
stride 2, so 7x7), 576 channels = 9 groups of 64, one group per point, GN -> feature fusion:
each point's features get its grid neighbours' features added through a 5x5 depth-wise +
1x1 conv ("first order"), then once more from the neighbours' fused features ("second
order") -> two grouped 4x4 deconvs (x4: 28x28 maps, each point's own quarter of the 56x56
map over the twice-enlarged RoI).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from detbox.errors import ConfigError
from detbox.models.task_modules.grid_point_coder import GridPointCoder
from detbox.registry import MODELS

__all__ = ["GridHead", "grid_neighbours"]

DEFAULT_LOSS_GRID = MappingProxyType(
    {"type": "CrossEntropyLoss", "use_sigmoid": True, "loss_weight": 15.0})


def grid_neighbours(grid_size: int) -> list[list[int]]:
    """For each point of a row-major ``grid_size x grid_size`` grid, its 4-connected
    neighbours (up, left, right, down)."""
    out = []
    for j in range(grid_size * grid_size):
        row, col = divmod(j, grid_size)
        cand = [(row - 1, col), (row, col - 1), (row, col + 1), (row + 1, col)]
        out.append([r * grid_size + c for r, c in cand
                    if 0 <= r < grid_size and 0 <= c < grid_size])
    return out


def _transition(channels: int) -> nn.Sequential:
    """One message between neighbouring points: 5x5 depth-wise conv, then 1x1 conv."""
    return nn.Sequential(nn.Conv2d(channels, channels, 5, padding=2, groups=channels),
                         nn.Conv2d(channels, channels, 1))


@MODELS.register
class GridHead(nn.Module):
    """Grid-point heat maps for RoIs, their training loss and the boxes they decode to.

    Args:
        in_channels: channels of the pooled RoI features.
        roi_size: side of the pooled RoI features (14); the heat maps are ``2 * roi_size``.
        grid_size: points per side (3).
        num_convs: 3x3 convs before the fusion (8).
        point_channels: channels per point (64; the convs have ``grid_size**2`` times that).
        dilation: dilation of the convs after the first (1 as in Grid R-CNN Plus; the first
            Grid R-CNN used dilated convs to widen the receptive field).
        norm_groups: GroupNorm groups of the convs (36).
        with_fusion: fuse neighbouring points' features (first and second order).
        pos_radius: radius of the positive disk around each target point (1).
        loss_grid: ``MODELS`` config of the per-pixel loss (sigmoid cross-entropy, weight 15).
    """

    def __init__(
        self,
        *,
        in_channels: int = 256,
        roi_size: int = 14,
        grid_size: int = 3,
        num_convs: int = 8,
        point_channels: int = 64,
        dilation: int = 1,
        norm_groups: int = 36,
        with_fusion: bool = True,
        pos_radius: int = 1,
        loss_grid: Mapping[str, Any] | nn.Module = DEFAULT_LOSS_GRID,
    ) -> None:
        super().__init__()
        self.coder = GridPointCoder(grid_size=grid_size, map_size=4 * roi_size,
                                    pos_radius=pos_radius)
        points = self.coder.num_points
        channels = points * point_channels
        if channels % norm_groups:
            raise ConfigError(f"GridHead: {channels} conv channels ({points} points x "
                              f"{point_channels}) are not divisible by norm_groups={norm_groups}")
        self.roi_size = roi_size
        self.point_channels = point_channels
        self.convs = nn.Sequential(*[
            self._conv(in_channels if i == 0 else channels, channels, i, dilation, norm_groups)
            for i in range(num_convs)
        ])
        self.neighbours = grid_neighbours(grid_size) if with_fusion else [[]] * points
        self.first_order = nn.ModuleList(
            nn.ModuleList(_transition(point_channels) for _ in nbrs) for nbrs in self.neighbours)
        self.second_order = nn.ModuleList(
            nn.ModuleList(_transition(point_channels) for _ in nbrs) for nbrs in self.neighbours)
        self.deconv1 = nn.ConvTranspose2d(channels, channels, 4, stride=2, padding=1,
                                          groups=points)
        self.deconv_norm = nn.GroupNorm(points, channels)
        self.deconv2 = nn.ConvTranspose2d(channels, points, 4, stride=2, padding=1,
                                          groups=points)
        self.loss_grid = MODELS.build(loss_grid)
        self._init_weights()

    @staticmethod
    def _conv(in_ch: int, out_ch: int, index: int, dilation: int, groups: int) -> nn.Sequential:
        dil = 1 if index == 0 else dilation
        conv = nn.Conv2d(in_ch, out_ch, 3, stride=2 if index == 0 else 1, padding=dil,
                         dilation=dil)
        return nn.Sequential(conv, nn.GroupNorm(groups, out_ch), nn.ReLU(inplace=True))

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)
        for deconv in (self.deconv1, self.deconv2):
            nn.init.normal_(deconv.weight, std=0.001)
            nn.init.zeros_(deconv.bias)
        # Positive pixels are rare: start every map at probability 0.01.
        nn.init.constant_(self.deconv2.bias, -math.log(0.99 / 0.01))

    def _fuse(self, x: Tensor) -> Tensor:
        """(R, G*c, h, w) point features -> the same with neighbours' features fused in."""
        parts = list(x.split(self.point_channels, dim=1))
        first = [parts[j] + sum((t(parts[n]) for t, n in zip(self.first_order[j], nbrs)),
                                torch.zeros_like(parts[j]))
                 for j, nbrs in enumerate(self.neighbours)]
        second = [parts[j] + sum((t(first[n]) for t, n in zip(self.second_order[j], nbrs)),
                                 torch.zeros_like(parts[j]))
                  for j, nbrs in enumerate(self.neighbours)]
        return torch.cat(second, dim=1)

    def _heatmaps(self, x: Tensor) -> Tensor:
        return self.deconv2(F.relu(self.deconv_norm(self.deconv1(x))))

    def forward(self, roi_feats: Tensor) -> tuple[Tensor, Tensor]:
        """(R, C_in, roi_size, roi_size) -> ``fused`` and ``unfused`` (R, G, 2*roi_size,
        2*roi_size) heat-map logits, from the fused and the plain point features (the plain
        ones only add a training signal; prediction reads ``fused``)."""
        if roi_feats.shape[-1] != self.roi_size or roi_feats.shape[-2] != self.roi_size:
            raise ValueError(f"GridHead expects {self.roi_size}x{self.roi_size} RoI features, "
                             f"got {tuple(roi_feats.shape[-2:])}")
        x = self.convs(roi_feats)
        return self._heatmaps(self._fuse(x)), self._heatmaps(x)

    def get_targets(self, rois: Tensor, gt_boxes: Tensor) -> Tensor:
        """(P, 4) positive RoIs and their (P, 4) GT boxes -> (P, G, S, S) 0/1 targets."""
        return self.coder.encode(rois, gt_boxes)

    def loss_by_outputs(self, fused: Tensor, unfused: Tensor, targets: Tensor
                        ) -> dict[str, Tensor]:
        """``loss_grid``: the per-pixel loss (mean) on the fused plus on the unfused maps."""
        if targets.numel() == 0:
            return {"loss_grid": fused.sum() * 0.0 + unfused.sum() * 0.0}
        return {"loss_grid": self.loss_grid(fused, targets) + self.loss_grid(unfused, targets)}

    def predict_by_outputs(
        self, fused: Tensor, rois: Tensor, img_shapes: Sequence[Sequence[int]],
    ) -> list[Tensor]:
        """Per image, the (N_i, 4) boxes decoded from the fused maps of its (R, 5) RoIs."""
        boxes = []
        for i, shape in enumerate(img_shapes):
            inds = torch.nonzero(rois[:, 0] == i).flatten()
            boxes.append(self.coder.decode(fused[inds], rois[inds, 1:], shape)[0])
        return boxes
