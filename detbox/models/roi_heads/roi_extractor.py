"""Pool fixed-size features for boxes from a feature pyramid (RoIAlign per level)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from detbox.models.graph_capture import capturing_graph
from detbox.models.memory_layout import cached_copy, nchw_copy, to_nchw, transpose_images
from detbox.models.roi_heads.threaded_roi_align import threaded_roi_align
from detbox.registry import MODELS

__all__ = ["MultiLevelRoIExtractor", "boxes_to_rois", "map_rois_to_levels"]


def boxes_to_rois(boxes: Sequence[Tensor]) -> Tensor:
    """Stack per-image boxes into RoIs with their image index.

    Args:
        boxes: one (N_i, 4) xyxy tensor per image.

    Returns:
        (sum N_i, 5) rows ``(image_index, x1, y1, x2, y2)``.
    """
    rois = [
        torch.cat([b.new_full((b.shape[0], 1), float(i)), b[:, :4]], dim=1)
        for i, b in enumerate(boxes)
    ]
    return torch.cat(rois, dim=0)


class _ChannelsLastToNCHW(torch.autograd.Function):
    """A channels-last map copied to contiguous NCHW; its gradient comes back channels-last,
    the layout of the map it belongs to (the plain copy's would be NCHW, and zero-filled)."""

    @staticmethod
    def forward(ctx, feat: Tensor) -> Tensor:
        return nchw_copy(feat)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        out = torch.empty_like(grad, memory_format=torch.channels_last)
        return transpose_images(grad.contiguous(), out, to_nchw=False)


def _shared_nchw_copy(feat: Tensor) -> Tensor:
    """:func:`nchw_copy` of the channels-last ``feat``, made once while ``feat`` lives and is
    unchanged: the box and mask extractors of one prediction (and a cascade's stages) pool from
    the same maps. A map made under ``torch.inference_mode`` (no version counter) is copied
    each time."""
    copy = cached_copy(feat, "nchw", lambda: nchw_copy(feat))
    return nchw_copy(feat) if copy is None else copy


def _contiguous_nchw(feat: Tensor) -> Tensor:
    """``feat`` (B, C, H, W) in contiguous NCHW, which RoIAlign's CPU kernel reads: a
    channels-last map (the CPU fast paths') through :func:`transpose_images`, once per map
    without autograd."""
    if not feat.is_contiguous(memory_format=torch.channels_last) or feat.is_contiguous():
        return to_nchw(feat)
    if capturing_graph():
        return nchw_copy(feat)  # no cached tensor may enter a graph as a constant
    if torch.is_grad_enabled() and feat.requires_grad:
        return _ChannelsLastToNCHW.apply(feat)
    return _shared_nchw_copy(feat)


def map_rois_to_levels(rois: Tensor, num_levels: int, finest_scale: float = 56.0) -> Tensor:
    """Pick the pyramid level each RoI is pooled from, by its scale (FPN paper, eq. 1).

    A box of scale ``sqrt(w * h)`` in ``[finest_scale * 2**k, finest_scale * 2**(k+1))`` goes to
    level ``k``; smaller boxes go to level 0 and larger ones to the coarsest level. With
    ``finest_scale=56`` and levels P2..P5 this is the paper's ``k0=4`` for 224-pixel boxes.

    Args:
        rois: (N, 5) ``(image_index, x1, y1, x2, y2)``.
        num_levels: number of feature levels.
        finest_scale: the scale at which boxes start leaving level 0 is twice this.

    Returns:
        (N,) int64 level index in ``[0, num_levels - 1]``.
    """
    scale = torch.sqrt((rois[:, 3] - rois[:, 1]) * (rois[:, 4] - rois[:, 2]))
    levels = torch.floor(torch.log2(scale / finest_scale) + 1e-6)
    return levels.clamp(min=0, max=num_levels - 1).to(torch.int64)


@MODELS.register
class MultiLevelRoIExtractor(nn.Module):
    """RoIAlign over a feature pyramid: each RoI is pooled from the level that fits its size.

    With a single feature map (C4 detectors) every RoI is pooled from it.

    Args:
        output_size: side of the pooled feature (7 for box heads, 14 for mask heads).
        featmap_strides: stride of each input level, finest first.
        sampling_ratio: bilinear samples per bin side; 0 adapts to the bin size.
        aligned: shift boxes by half a pixel so that pixel centres line up (Detectron2's
            ``ROIAlignV2``); torchvision's detectors use ``False``.
        finest_scale: see :func:`map_rois_to_levels`.
    """

    def __init__(
        self,
        *,
        output_size: int = 7,
        featmap_strides: Sequence[int] = (4, 8, 16, 32),
        sampling_ratio: int = 0,
        aligned: bool = True,
        finest_scale: float = 56.0,
    ) -> None:
        super().__init__()
        self.output_size = int(output_size)
        self.featmap_strides = tuple(int(s) for s in featmap_strides)
        self.sampling_ratio = int(sampling_ratio)
        self.aligned = bool(aligned)
        self.finest_scale = float(finest_scale)
        for s in self.featmap_strides:
            if s <= 0 or 2 ** round(math.log2(s)) != s:
                raise ValueError(f"featmap_strides must be powers of two, got {featmap_strides}")

    @property
    def num_levels(self) -> int:
        return len(self.featmap_strides)

    def forward(self, feats: Sequence[Tensor], rois: Tensor) -> Tensor:
        """Pool every RoI.

        Args:
            feats: the pyramid, (B, C, H_l, W_l) per level; only the first ``num_levels``
                levels are used (an extra P6 level from the neck is ignored).
            rois: (N, 5) ``(image_index, x1, y1, x2, y2)`` in input image pixels.

        Returns:
            (N, C, output_size, output_size) pooled features.
        """
        feats = list(feats)[: self.num_levels]
        if len(feats) < self.num_levels:
            raise ValueError(f"RoI extractor expects {self.num_levels} feature levels "
                             f"(strides {self.featmap_strides}), got {len(feats)}")
        size = (self.output_size, self.output_size)
        rois = rois.to(feats[0].dtype)
        if self.num_levels == 1:
            return self._pool(feats[0], rois, self.featmap_strides[0], size)
        # Every RoI maps to exactly one level, so every row is written below: no zero fill.
        out = feats[0].new_empty((rois.shape[0], feats[0].shape[1], *size))
        levels = map_rois_to_levels(rois, self.num_levels, self.finest_scale)
        for level, (feat, stride) in enumerate(zip(feats, self.featmap_strides)):
            inds = torch.nonzero(levels == level).flatten()
            if inds.numel() == 0:
                # Keep every level in the autograd graph so distributed training sees all params.
                out = out + feat.sum() * 0.0
                continue
            out[inds] = self._pool(feat, rois[inds], stride, size)
        return out

    def _pool(self, feat: Tensor, rois: Tensor, stride: int, size: tuple[int, int]) -> Tensor:
        return threaded_roi_align(_contiguous_nchw(feat), rois, size, 1.0 / stride,
                                  self.sampling_ratio, self.aligned)
