"""Zoom-out augmentation (SSD's "expand"): place the image on a larger canvas of the mean colour."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Annotated, Any

import torch

from detbox.data.transforms.crop import require_training_sample
from detbox.data.transforms.formatting import IMAGENET_MEAN
from detbox.errors import ConfigError
from detbox.registry import TRANSFORMS
from detbox.typecheck import Probability

__all__ = ["Expand"]


@TRANSFORMS.register
class Expand:
    """With probability ``prob``, put the image at a random place on a canvas ``ratio`` times
    its size, filled with ``mean``: objects get smaller, which helps single-scale detectors
    such as SSD learn small objects. Training only (``predict`` could not undo it).

    Args:
        mean: fill colour, RGB on the 0-255 scale (the normalization mean, so that the canvas
            becomes zero after ``Normalize``); the transform must come before ``Normalize``.
        ratio_range: ``(min, max)`` of the canvas side relative to the image side.
        prob: chance to expand an image.

    The image keeps its dtype (a uint8 canvas takes the rounded mean). Boxes, ignored boxes and
    masks are shifted by the image's offset; ``img_shape`` becomes the canvas size.
    """

    def __init__(
        self,
        mean: Sequence[float] = IMAGENET_MEAN,
        ratio_range: Sequence[float] = (1.0, 4.0),
        prob: Annotated[float, Probability] = 0.5,
    ) -> None:
        if len(mean) != 3:
            raise ConfigError(f"Expand mean must be 3 RGB values, got {mean!r}")
        if len(ratio_range) != 2 or not 1.0 <= ratio_range[0] <= ratio_range[1]:
            raise ConfigError("Expand ratio_range must be (min, max) with 1 <= min <= max, "
                              f"got {ratio_range!r}")
        if not 0.0 <= prob <= 1.0:
            raise ConfigError(f"Expand prob must be in [0, 1], got {prob}")
        self.mean = tuple(float(m) for m in mean)
        self.ratio_range = (float(ratio_range[0]), float(ratio_range[1]))
        self.prob = prob

    def __call__(self, results: dict[str, Any]) -> dict[str, Any]:
        require_training_sample(results, "Expand", before_normalize=True)
        if self.prob <= 0 or random.random() >= self.prob:
            return results
        image = results["img"]
        height, width = results["img_shape"]
        ratio = random.uniform(*self.ratio_range)
        new_h, new_w = int(height * ratio), int(width * ratio)
        top, left = random.randint(0, new_h - height), random.randint(0, new_w - width)
        fill = torch.tensor(self.mean)
        if not image.is_floating_point():
            fill = fill.round()
        canvas = fill.to(image.dtype).view(3, 1, 1).expand(3, new_h, new_w).clone()
        canvas[:, top:top + height, left:left + width] = image[:, :height, :width]
        results["img"] = canvas
        offset = torch.tensor([left, top, left, top], dtype=torch.float32)
        for key in ("gt_boxes", "ignored_boxes", "proposals"):
            if key in results:
                results[key] = results[key] + offset
        if "gt_masks" in results:
            masks = results["gt_masks"]
            expanded = masks.new_zeros((masks.shape[0], new_h, new_w))
            expanded[:, top:top + height, left:left + width] = masks
            results["gt_masks"] = expanded
        if "gt_seg" in results:
            seg = results["gt_seg"].new_full((new_h, new_w), 255)
            seg[top:top + height, left:left + width] = results["gt_seg"]
            results["gt_seg"] = seg
        results["img_shape"] = (new_h, new_w)
        return results

    def __repr__(self) -> str:
        return f"Expand(mean={self.mean}, ratio_range={self.ratio_range}, prob={self.prob})"
