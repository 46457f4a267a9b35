"""Grid R-CNN's box representation: a grid of points on the box, each found on a heat map.

A box is described by ``grid_size x grid_size`` points spread evenly over it (corners, edge
midpoints and centre for the paper's 3x3). For an RoI the head predicts one heat map per point
over the RoI *enlarged twice* around its centre ("extended region mapping": a GT point may lie
outside a loose proposal). The whole map is ``map_size x map_size`` (56 for 14x14 RoI features);
Grid R-CNN Plus predicts for each point only the quarter-area sub-region where that point can
lie (a ``map_size // 2`` square: the top-left point's map covers the top-left part, ...).

Points are numbered row-major: point ``j`` sits in grid row ``j // grid_size`` (top to bottom)
and column ``j % grid_size`` (left to right).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from detbox.errors import ConfigError

__all__ = ["GridPointCoder", "expand_boxes"]


def expand_boxes(boxes: Tensor, factor: float = 2.0) -> Tensor:
    """(N, 4) xyxy boxes scaled by ``factor`` around their centres."""
    centres = (boxes[:, :2] + boxes[:, 2:]) / 2
    half = (boxes[:, 2:] - boxes[:, :2]) * (factor / 2)
    return torch.cat([centres - half, centres + half], dim=1)


class GridPointCoder:
    """Encode GT boxes as grid-point heat-map targets, decode heat maps into boxes.

    Args:
        grid_size: points per side (3: a 3x3 grid of 9 points).
        map_size: side of the whole heat map over the enlarged RoI (56 in Grid R-CNN Plus).
        pos_radius: target pixels within this distance of a point's pixel are positive.
    """

    def __init__(self, *, grid_size: int = 3, map_size: int = 56, pos_radius: int = 1) -> None:
        if grid_size < 2:
            raise ConfigError(f"a grid needs at least 2 points per side, got {grid_size}")
        if map_size % 4:
            raise ConfigError(f"grid heat maps need a map_size divisible by 4, got {map_size}")
        self.grid_size = grid_size
        self.map_size = map_size
        self.pos_radius = pos_radius
        self.sub_size = map_size // 2
        self.offsets = self._sub_region_offsets()

    @property
    def num_points(self) -> int:
        return self.grid_size * self.grid_size

    def _sub_region_offsets(self) -> Tensor:
        """(G, 2) ``(x0, y0)`` of each point's sub-region in the whole map."""
        last = self.grid_size - 1

        def start(index: int) -> int:
            if index == 0:
                return 0
            if index == last:
                return self.map_size - self.sub_size
            return max(int((index / last - 0.25) * self.map_size), 0)

        return torch.tensor([[start(j % self.grid_size), start(j // self.grid_size)]
                             for j in range(self.num_points)], dtype=torch.int64)

    def grid_points(self, boxes: Tensor) -> Tensor:
        """(N, 4) xyxy boxes -> (N, G, 2) ``(x, y)`` of their grid points, row-major."""
        steps = torch.arange(self.grid_size, device=boxes.device, dtype=boxes.dtype)
        steps = steps / (self.grid_size - 1)
        fx = steps.repeat(self.grid_size)  # column fraction of point j
        fy = steps.repeat_interleave(self.grid_size)  # row fraction of point j
        xs = boxes[:, 0:1] + fx * (boxes[:, 2:3] - boxes[:, 0:1])
        ys = boxes[:, 1:2] + fy * (boxes[:, 3:4] - boxes[:, 1:2])
        return torch.stack([xs, ys], dim=-1)

    def encode(self, rois: Tensor, gt_boxes: Tensor) -> Tensor:
        """Heat-map targets of each RoI's matched GT box.

        Args:
            rois: (P, 4) xyxy positive RoIs (the boxes the head saw).
            gt_boxes: (P, 4) xyxy GT box matched to each.

        Returns:
            (P, G, S, S) float 0/1, S = ``map_size // 2``: on each point's sub-region, a disk
            of ``pos_radius`` around the pixel holding the GT point. RoIs whose enlarged box is
            at most ``grid_size`` pixels wide or high get no positive pixel.
        """
        num, size = rois.shape[0], self.map_size
        region = expand_boxes(rois.float())
        wh = (region[:, 2:] - region[:, :2]).clamp(min=1e-6)
        points = self.grid_points(gt_boxes.float())
        cells = torch.floor((points - region[:, None, :2]) / wh[:, None] * size)  # (P, G, 2)
        coords = torch.arange(size, device=rois.device, dtype=torch.float32)
        dx = (coords.view(1, 1, 1, size) - cells[..., 0, None, None]) ** 2
        dy = (coords.view(1, 1, size, 1) - cells[..., 1, None, None]) ** 2
        targets = (dx + dy <= self.pos_radius ** 2).float()  # (P, G, size, size)
        too_small = (wh <= self.grid_size).any(dim=1)
        targets[too_small] = 0.0
        out = targets.new_zeros((num, self.num_points, self.sub_size, self.sub_size))
        for j, (x0, y0) in enumerate(self.offsets.tolist()):
            out[:, j] = targets[:, j, y0:y0 + self.sub_size, x0:x0 + self.sub_size]
        return out

    def decode(
        self, heatmaps: Tensor, rois: Tensor, img_shape: Sequence[int] | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Boxes from the heat-map maxima (Grid R-CNN's grid-guided localization).

        Each point lands at the centre of its map's most probable pixel; a box edge is the
        probability-weighted mean coordinate of the points on that edge (the left column
        gives ``x1``, the top row ``y1``, ...).

        Args:
            heatmaps: (R, G, S, S) logits, one sub-region map per point.
            rois: (R, 4) xyxy boxes the maps were predicted for.
            img_shape: ``(h, w)`` to clip the boxes to, or None.

        Returns:
            ``boxes`` (R, 4) xyxy and ``point_scores`` (R, G) the maxima's probabilities.
        """
        num, points, h, w = heatmaps.shape
        probs = heatmaps.float().sigmoid().reshape(num, points, h * w)
        scores, index = probs.max(dim=2)
        offsets = self.offsets.to(heatmaps.device)
        xs = (index % w + offsets[:, 0]).float()
        ys = (torch.div(index, w, rounding_mode="floor") + offsets[:, 1]).float()
        region = expand_boxes(rois.float())
        wh = region[:, 2:] - region[:, :2]
        abs_x = (xs + 0.5) / self.map_size * wh[:, 0:1] + region[:, 0:1]
        abs_y = (ys + 0.5) / self.map_size * wh[:, 1:2] + region[:, 1:2]
        g = self.grid_size
        index = torch.arange(points, device=heatmaps.device)
        edges = [(abs_x, index % g == 0), (abs_y, index // g == 0),
                 (abs_x, index % g == g - 1), (abs_y, index // g == g - 1)]
        boxes = torch.stack([
            (coord[:, on] * scores[:, on]).sum(1) / scores[:, on].sum(1).clamp(min=1e-12)
            for coord, on in edges
        ], dim=1)
        if img_shape is not None:
            boxes[:, 0::2] = boxes[:, 0::2].clamp(0, img_shape[1])
            boxes[:, 1::2] = boxes[:, 1::2].clamp(0, img_shape[0])
        return boxes, scores
