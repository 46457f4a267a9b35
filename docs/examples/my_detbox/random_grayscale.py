"""A transform: a callable that takes the results dict and returns it."""

from __future__ import annotations

import random
from typing import Any

from detbox.registry import TRANSFORMS


@TRANSFORMS.register
class RandomGrayscale:
    """Turn the image grey with probability ``prob``; boxes and masks are untouched.

    Works on the ``(3, H, W)`` uint8 image, so it goes before ``Normalize``.

    Args:
        prob: chance of turning an image grey.
    """

    def __init__(self, prob: float = 0.1) -> None:
        self.prob = prob

    def __call__(self, results: dict[str, Any]) -> dict[str, Any]:
        if random.random() < self.prob:
            image = results["img"]
            grey = (0.299 * image[0] + 0.587 * image[1] + 0.114 * image[2]).to(image.dtype)
            results["img"] = grey.expand_as(image).clone()
        return results
