"""Transforms of the semantic map ``gt_seg`` alone."""

from __future__ import annotations

from typing import Annotated, Any

import torch.nn.functional as F

from detbox.errors import ConfigError
from detbox.registry import TRANSFORMS
from detbox.typecheck import Positive

__all__ = ["SegRescale", "rescaled_seg_size"]


def rescaled_seg_size(height: int, width: int, scale_factor: float) -> tuple[int, int]:
    """``(round(h * s), round(w * s))`` with halves rounded up, at least 1 pixel per side."""
    return (max(1, int(height * scale_factor + 0.5)), max(1, int(width * scale_factor + 0.5)))


@TRANSFORMS.register
class SegRescale:
    """Rescale the semantic map ``gt_seg`` by ``scale_factor`` (nearest neighbour), nothing else.

    A head that predicts at a fixed stride may want its target map stored at that stride,
    e.g. ``SegRescale(scale_factor=1 / 8)`` for a segmentation branch at 1/8 of the input, which
    also makes the map 64 times smaller to collate. Labels are never blended: each output pixel
    copies one input pixel, so ``255`` (no label) stays ``255``.

    detbox's HTC ``FusedSemanticHead`` already samples the full-resolution map at its own stride
    (``semantic_targets``), so ``configs/_base_/datasets/coco_instance_semantic.py`` does not use
    this transform; adding it there would shrink the map twice.

    Put it after every transform that moves pixels (Resize, RandomFlip, crops, Pad): they expect
    ``gt_seg`` at the image's size.

    Args:
        scale_factor: output size = input size times this, halves rounded up.

    Updates ``gt_seg`` (H, W) uint8 to ``(round(H * s), round(W * s))``; records
    ``seg_scale_factor``. A sample without ``gt_seg`` passes unchanged.
    """

    def __init__(self, scale_factor: Annotated[float, Positive] = 1.0) -> None:
        if not scale_factor > 0:
            raise ConfigError(f"SegRescale scale_factor must be > 0, got {scale_factor!r}")
        self.scale_factor = float(scale_factor)

    def __call__(self, results: dict[str, Any]) -> dict[str, Any]:
        if "gt_seg" not in results:
            return results
        if "seg_scale_factor" in results:
            raise ConfigError("SegRescale is applied twice in the pipeline")
        seg = results["gt_seg"]
        size = rescaled_seg_size(*seg.shape[-2:], self.scale_factor)
        if tuple(seg.shape[-2:]) != size:
            seg = F.interpolate(seg[None, None], size=size, mode="nearest")[0, 0]
        results["gt_seg"] = seg
        results["seg_scale_factor"] = self.scale_factor
        return results

    def __repr__(self) -> str:
        return f"SegRescale(scale_factor={self.scale_factor})"
