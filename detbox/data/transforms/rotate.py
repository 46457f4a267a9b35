"""Rotation by multiples of 90 degrees: exact for images, boxes and masks (no resampling)."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Annotated, Any

import torch
from torch import Tensor

from detbox.data.transforms.crop import require_training_sample
from detbox.errors import ConfigError
from detbox.registry import TRANSFORMS
from detbox.typecheck import Probability

__all__ = ["RandomRotate90", "rotate_boxes_90"]


def rotate_boxes_90(boxes: Tensor, img_shape: Sequence[int], turns: int) -> Tensor:
    """Rotate (N, 4) xyxy boxes with their ``(h, w)`` image by ``turns`` x 90 degrees
    counter-clockwise (as ``torch.rot90(img, turns, dims=(-2, -1))`` rotates the pixels)."""
    height, width = img_shape
    for _ in range(turns % 4):
        x1, y1, x2, y2 = boxes.unbind(dim=1)
        boxes = torch.stack([y1, width - x2, y2, width - x1], dim=1)  # (x, y) -> (y, W - x)
        height, width = width, height
    return boxes


@TRANSFORMS.register
class RandomRotate90:
    """With probability ``prob``, rotate the image by an angle drawn from ``angles``.

    Suits data without a natural "up" (aerial, microscopy, documents scanned any way round).
    Training only: ``predict`` does not undo rotations.

    Args:
        prob: chance to rotate an image.
        angles: counter-clockwise angles in degrees to choose from, multiples of 90.
    """

    def __init__(
        self,
        prob: Annotated[float, Probability] = 0.5,
        angles: Sequence[int] = (90, 180, 270),
    ) -> None:
        if not 0.0 <= prob <= 1.0:
            raise ConfigError(f"RandomRotate90 prob must be in [0, 1], got {prob}")
        if not angles or any(int(a) % 90 or int(a) != a for a in angles):
            raise ConfigError(f"RandomRotate90 angles must be multiples of 90, got {angles!r}")
        self.prob = prob
        self.angles = tuple(int(a) for a in angles)

    def __call__(self, results: dict[str, Any]) -> dict[str, Any]:
        require_training_sample(results, "RandomRotate90")
        if self.prob <= 0 or random.random() >= self.prob:
            return results
        turns = (random.choice(self.angles) // 90) % 4
        if turns == 0:
            return results
        shape = results["img_shape"]
        results["img"] = torch.rot90(results["img"], turns, dims=(-2, -1))
        for key in ("gt_boxes", "ignored_boxes", "proposals"):
            if key in results:
                results[key] = rotate_boxes_90(results[key], shape, turns)
        if "gt_masks" in results:
            results["gt_masks"] = torch.rot90(results["gt_masks"], turns, dims=(-2, -1))
        if "gt_seg" in results:
            results["gt_seg"] = torch.rot90(results["gt_seg"], turns, dims=(-2, -1))
        results["img_shape"] = (shape[1], shape[0]) if turns % 2 else tuple(shape)
        return results

    def __repr__(self) -> str:
        return f"RandomRotate90(prob={self.prob}, angles={self.angles})"
