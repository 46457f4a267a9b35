"""Paste fixed-size RoI mask predictions back into whole-image masks.

A mask head predicts an ``M x M`` probability map inside each detected box. Evaluation and
visualization need a mask over the whole (original) image, so each map is resampled into its box.

Two resamplers are provided:

* ``'grid'`` (default) samples every image pixel centre at its exact, sub-pixel position inside
  the box, so a mask follows its box precisely even for small boxes;
* ``'torchvision'`` reproduces ``torchvision``'s Mask R-CNN paste (pad the map by one pixel, snap
  the enlarged box to integers, bilinear resize), used to match its outputs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["PASTE_MODES", "paste_masks"]

PASTE_MODES = ("grid", "torchvision")

# Pixels written per chunk when pasting on an accelerator (bounds the temporary grid's memory).
_GPU_PIXELS_PER_CHUNK = 2**26


def paste_masks(
    masks: Tensor,
    boxes: Tensor,
    image_shape: tuple[int, int],
    *,
    threshold: float | None = 0.5,
    mode: str = "grid",
) -> Tensor:
    """Paste per-box mask probabilities into masks over the whole image.

    Args:
        masks: (N, M, M) or (N, Mh, Mw) float probabilities in ``[0, 1]``, one per box.
        boxes: (N, 4) xyxy boxes in the coordinates of the output image.
        image_shape: ``(height, width)`` of the output masks.
        threshold: binarize with ``prob >= threshold``; None returns the probabilities.
        mode: ``'grid'`` or ``'torchvision'`` (see the module docstring).

    Returns:
        (N, height, width) bool masks (float probabilities when ``threshold`` is None).
    """
    if mode not in PASTE_MODES:
        raise ValueError(f"unknown mask paste mode '{mode}', expected one of {PASTE_MODES}")
    if masks.shape[0] != boxes.shape[0]:
        raise ValueError(f"paste_masks got {masks.shape[0]} masks but {boxes.shape[0]} boxes")
    height, width = int(image_shape[0]), int(image_shape[1])
    masks = masks.float()
    paste = _paste_torchvision if mode == "torchvision" else _paste_grid
    if threshold is not None and threshold <= 0:  # pixels outside every box pass too
        return paste(masks, boxes.float(), height, width, None) >= threshold
    return paste(masks, boxes.float(), height, width, threshold)


def _new_canvas(masks: Tensor, height: int, width: int, threshold: float | None) -> Tensor:
    """(N, height, width) zeros: bool when binarizing (a quarter of the memory of float32, and
    only the box regions are ever thresholded), else float."""
    dtype = torch.bool if threshold is not None else masks.dtype
    return torch.zeros((masks.shape[0], height, width), dtype=dtype, device=masks.device)


def _binarize(values: Tensor, threshold: float | None) -> Tensor:
    return values if threshold is None else values >= threshold


def _paste_grid(masks: Tensor, boxes: Tensor, height: int, width: int,
                threshold: float | None) -> Tensor:
    """Sub-pixel paste with ``grid_sample``; on CPU each mask only touches its own box region."""
    num = masks.shape[0]
    out = _new_canvas(masks, height, width, threshold)
    if num == 0 or height == 0 or width == 0:
        return out
    if masks.device.type == "cpu":
        chunks = torch.arange(num, device=masks.device).split(1)
    else:
        per_chunk = max(1, _GPU_PIXELS_PER_CHUNK // (height * width))
        chunks = torch.arange(num, device=masks.device).split(per_chunk)
    for inds in chunks:
        box = boxes[inds]
        if masks.device.type == "cpu":
            x0 = max(int(box[:, 0].min().floor().clamp(min=0)) - 1, 0)
            y0 = max(int(box[:, 1].min().floor().clamp(min=0)) - 1, 0)
            x1 = min(int(box[:, 2].max().ceil()) + 1, width)
            y1 = min(int(box[:, 3].max().ceil()) + 1, height)
        else:
            x0, y0, x1, y1 = 0, 0, width, height
        if x1 <= x0 or y1 <= y0:
            continue
        out[inds, y0:y1, x0:x1] = _binarize(
            _sample_in_boxes(masks[inds], box, (x0, y0, x1, y1)), threshold)
    return out


def _sample_in_boxes(masks: Tensor, boxes: Tensor, region: tuple[int, int, int, int]) -> Tensor:
    """Values of ``masks`` (K, Mh, Mw) at the pixel centres of ``region`` (x0, y0, x1, y1).

    A pixel centre ``x + 0.5`` maps to ``-1`` at the box's left edge and ``+1`` at its right edge,
    the convention of ``grid_sample(align_corners=False)``; pixels outside the box read zero.
    """
    x0, y0, x1, y1 = region
    device = masks.device
    xs = torch.arange(x0, x1, device=device, dtype=torch.float32) + 0.5
    ys = torch.arange(y0, y1, device=device, dtype=torch.float32) + 0.5
    bx1, by1, bx2, by2 = boxes.unbind(dim=1)
    bw = (bx2 - bx1).clamp(min=1e-6)
    bh = (by2 - by1).clamp(min=1e-6)
    gx = (xs[None, :] - bx1[:, None]) / bw[:, None] * 2 - 1  # (K, W')
    gy = (ys[None, :] - by1[:, None]) / bh[:, None] * 2 - 1  # (K, H')
    grid = torch.stack(
        [gx[:, None, :].expand(-1, gy.shape[1], -1), gy[:, :, None].expand(-1, -1, gx.shape[1])],
        dim=3,
    )
    return F.grid_sample(masks[:, None], grid, mode="bilinear", padding_mode="zeros",
                         align_corners=False)[:, 0]


def _paste_torchvision(masks: Tensor, boxes: Tensor, height: int, width: int,
                       threshold: float | None) -> Tensor:
    """torchvision's paste: one-pixel zero padding, integer box, bilinear resize, crop."""
    num = masks.shape[0]
    out = _new_canvas(masks, height, width, threshold)
    if num == 0:
        return out
    padded = F.pad(masks, (1, 1, 1, 1))
    scale_x = float(masks.shape[-1] + 2) / masks.shape[-1]
    scale_y = float(masks.shape[-2] + 2) / masks.shape[-2]
    half_w = (boxes[:, 2] - boxes[:, 0]) * 0.5 * scale_x
    half_h = (boxes[:, 3] - boxes[:, 1]) * 0.5 * scale_y
    cx = (boxes[:, 2] + boxes[:, 0]) * 0.5
    cy = (boxes[:, 3] + boxes[:, 1]) * 0.5
    int_boxes = torch.stack([cx - half_w, cy - half_h, cx + half_w, cy + half_h], dim=1)
    int_boxes = int_boxes.to(torch.int64).tolist()
    for i, (bx1, by1, bx2, by2) in enumerate(int_boxes):
        box_w, box_h = max(bx2 - bx1 + 1, 1), max(by2 - by1 + 1, 1)
        resized = F.interpolate(padded[i][None, None], size=(box_h, box_w), mode="bilinear",
                                align_corners=False)[0, 0]
        x0, x1 = max(bx1, 0), min(bx2 + 1, width)
        y0, y1 = max(by1, 0), min(by2 + 1, height)
        if x1 <= x0 or y1 <= y0:
            continue
        out[i, y0:y1, x0:x1] = _binarize(resized[y0 - by1:y1 - by1, x0 - bx1:x1 - bx1],
                                         threshold)
    return out
