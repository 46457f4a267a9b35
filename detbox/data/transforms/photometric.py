"""Colour augmentation: random brightness, contrast, saturation and hue (SSD's distortion)."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Annotated, Any

import torch
from torch import Tensor
from torchvision.transforms.v2 import functional as TF

from detbox.errors import ConfigError
from detbox.registry import TRANSFORMS
from detbox.typecheck import Probability

__all__ = ["PhotoMetricDistortion"]


def _check_range(name: str, bounds: Sequence[float]) -> tuple[float, float]:
    if len(bounds) != 2 or not 0 <= bounds[0] <= bounds[1]:
        raise ConfigError(f"PhotoMetricDistortion {name} must be (min, max) with "
                          f"0 <= min <= max, got {bounds!r}")
    return float(bounds[0]), float(bounds[1])


@TRANSFORMS.register
class PhotoMetricDistortion:
    """Distort the colours of the image; boxes and masks are untouched.

    Each of the four changes is applied with probability ``prob``, in the order brightness,
    then contrast either before or after (a coin flip) saturation and hue:

    - brightness: add ``delta ~ U(-brightness_delta, brightness_delta)`` to every pixel;
    - contrast: blend with the image's mean grey by ``alpha ~ U(contrast_range)``;
    - saturation: blend with the greyscale image by ``alpha ~ U(saturation_range)``;
    - hue: rotate the hue by ``delta ~ U(-hue_delta, hue_delta)`` degrees.

    Values are clamped to ``[0, 255]`` after each step. Works on the 0-255 scale, so it goes
    before ``Normalize``; the output is float32.

    Args:
        brightness_delta: largest added brightness, in pixel values.
        contrast_range: ``(min, max)`` contrast factor; 1 is unchanged.
        saturation_range: ``(min, max)`` saturation factor; 1 is unchanged, 0 is grey.
        hue_delta: largest hue rotation in degrees.
        prob: chance of each of the four changes.
    """

    def __init__(
        self,
        brightness_delta: float = 32,
        contrast_range: Sequence[float] = (0.5, 1.5),
        saturation_range: Sequence[float] = (0.5, 1.5),
        hue_delta: float = 18,
        prob: Annotated[float, Probability] = 0.5,
    ) -> None:
        if brightness_delta < 0 or not 0 <= hue_delta <= 180:
            raise ConfigError("PhotoMetricDistortion needs brightness_delta >= 0 and hue_delta "
                              f"in [0, 180], got {brightness_delta}, {hue_delta}")
        if not 0.0 <= prob <= 1.0:
            raise ConfigError(f"PhotoMetricDistortion prob must be in [0, 1], got {prob}")
        self.brightness_delta = float(brightness_delta)
        self.contrast_range = _check_range("contrast_range", contrast_range)
        self.saturation_range = _check_range("saturation_range", saturation_range)
        self.hue_delta = float(hue_delta)
        self.prob = prob

    def _maybe(self) -> bool:
        return self.prob > 0 and random.random() < self.prob

    def _contrast(self, image: Tensor) -> Tensor:
        if not self._maybe():
            return image
        return TF.adjust_contrast(image, random.uniform(*self.contrast_range))

    def distort(self, image: Tensor) -> Tensor:
        """(3, H, W) float image in ``[0, 1]`` -> distorted image in ``[0, 1]``."""
        if self._maybe():
            delta = random.uniform(-self.brightness_delta, self.brightness_delta) / 255
            image = (image + delta).clamp(0, 1)
        contrast_first = random.random() < 0.5
        if contrast_first:
            image = self._contrast(image)
        if self._maybe():
            image = TF.adjust_saturation(image, random.uniform(*self.saturation_range))
        if self._maybe():
            image = TF.adjust_hue(image, random.uniform(-self.hue_delta, self.hue_delta) / 360)
        if not contrast_first:
            image = self._contrast(image)
        return image

    def __call__(self, results: dict[str, Any]) -> dict[str, Any]:
        if "img_norm" in results:
            raise ConfigError("PhotoMetricDistortion works on 0-255 pixel values: put it "
                              "before Normalize")
        results["img"] = self.distort(results["img"].to(torch.float32) / 255) * 255
        return results

    def __repr__(self) -> str:
        return (f"PhotoMetricDistortion(brightness_delta={self.brightness_delta}, "
                f"contrast_range={self.contrast_range}, saturation_range="
                f"{self.saturation_range}, hue_delta={self.hue_delta}, prob={self.prob})")
