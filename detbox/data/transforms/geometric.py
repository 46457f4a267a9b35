"""Geometric transforms that keep the image, boxes, masks and ignored boxes consistent."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from typing import Annotated, Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from detbox.errors import ConfigError
from detbox.registry import TRANSFORMS
from detbox.structures import FLIP_DIRECTIONS, compose_flips, flip_boxes
from detbox.typecheck import Positive, Probability

FlipDirection = Literal["horizontal", "vertical", "diagonal"]

__all__ = [
    "Pad",
    "RandomFlip",
    "RandomResize",
    "Resize",
    "drop_degenerate_boxes",
    "resized_size",
]


def resized_size(height: int, width: int, long_side: float, short_side: float) -> tuple[int, int]:
    """Size ``(new_h, new_w)`` that fits an image inside ``long_side`` x ``short_side``.

    Uses ``scale = min(short / min(h, w), long / max(h, w))`` and ``floor(dim * scale)``, the
    rule of torchvision's detection preprocessing, so models can be checked against it.
    """
    scale = min(short_side / min(height, width), long_side / max(height, width))
    return math.floor(height * scale), math.floor(width * scale)


def drop_degenerate_boxes(
    results: dict[str, Any], shape: tuple[int, int] | None = None
) -> dict[str, Any]:
    """Clip boxes to ``shape`` (default ``img_shape``) and drop those with zero width or
    height, with their labels and masks; ignored boxes are clipped and filtered the same way."""
    height, width = shape if shape is not None else results["img_shape"]
    if "gt_boxes" in results:
        boxes = _clip(results["gt_boxes"], height, width)
        keep = _valid(boxes)
        results["gt_boxes"] = boxes[keep]
        results["gt_labels"] = results["gt_labels"][keep]
        if "gt_masks" in results:
            results["gt_masks"] = results["gt_masks"][keep]
    if "ignored_boxes" in results:
        ignored = _clip(results["ignored_boxes"], height, width)
        results["ignored_boxes"] = ignored[_valid(ignored)]
    return results


def _clip(boxes: Tensor, height: int, width: int) -> Tensor:
    x = boxes[:, 0::2].clamp(0, width)
    y = boxes[:, 1::2].clamp(0, height)
    return torch.stack([x[:, 0], y[:, 0], x[:, 1], y[:, 1]], dim=1)


def _valid(boxes: Tensor) -> Tensor:
    return (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])


def _resize_masks(masks: Tensor, height: int, width: int) -> Tensor:
    """Nearest-neighbour resize of (N, h, w) masks to (N, height, width), keeping the dtype."""
    if masks.shape[0] == 0:
        return masks.new_zeros((0, height, width))
    source = masks[:, None] if masks.dtype == torch.uint8 else masks[:, None].float()
    return F.interpolate(source, size=(height, width), mode="nearest")[:, 0].to(masks.dtype)


def _check_not_padded(results: dict[str, Any], name: str) -> None:
    if "pad_shape" in results:
        raise ConfigError(f"{name} must come before Pad in the pipeline")


def _as_scales(scale: Any) -> list[tuple[float, float]]:
    """One ``(a, b)`` pair or a list of pairs (YAML turns tuples into lists) -> list of pairs."""
    if isinstance(scale, Sequence) and len(scale) == 2 and all(
        isinstance(v, (int, float)) for v in scale
    ):
        return [(scale[0], scale[1])]
    if isinstance(scale, Sequence) and scale and all(
        isinstance(s, Sequence) and len(s) == 2 for s in scale
    ):
        return [(s[0], s[1]) for s in scale]
    raise ConfigError(
        f"Resize scale must be a (long, short) pair or a list of pairs, got {scale!r}"
    )


@TRANSFORMS.register
class Resize:
    """Resize the image (bilinear, as float) and its boxes and masks (nearest).

    Args:
        scale: ``(long, short)`` bound, or a list of them: training picks one at random per
            image (multi-scale). With ``keep_ratio=False`` the pair is the exact ``(width,
            height)``.
        keep_ratio: keep the aspect ratio, fitting the image inside the bound.
        scale_range: ``(min_short, max_short)``: draw the short-side target uniformly from this
            inclusive integer range per image instead; the long side is capped by ``scale``'s
            largest long side.

    Updates ``img`` (3, H', W') float32 (0-255 values), ``img_shape``, ``scale_factor`` (the
    actual per-axis factors ``(W'/W, H'/H)``, composed with any earlier resize), ``gt_boxes``,
    ``gt_masks``, ``gt_seg`` (nearest), ``ignored_boxes`` and ``proposals``.
    """

    def __init__(
        self,
        scale: Sequence[float] | Sequence[Sequence[float]] = (1333, 800),
        keep_ratio: bool = True,
        scale_range: Sequence[int] | None = None,
    ) -> None:
        self.scales = _as_scales(scale)
        self.keep_ratio = keep_ratio
        if scale_range is not None:
            if len(scale_range) != 2 or scale_range[0] > scale_range[1] or not keep_ratio:
                raise ConfigError("Resize scale_range must be (min_short, max_short) with "
                                  f"min <= max and keep_ratio=True, got {scale_range!r}")
            scale_range = (int(scale_range[0]), int(scale_range[1]))
        self.scale_range = scale_range

    def _target_size(self, height: int, width: int) -> tuple[int, int]:
        if self.scale_range is not None:
            long_side = max(s[0] for s in self.scales)
            return resized_size(height, width, long_side, random.randint(*self.scale_range))
        first, second = random.choice(self.scales) if len(self.scales) > 1 else self.scales[0]
        if not self.keep_ratio:  # (width, height)
            return int(second), int(first)
        return resized_size(height, width, first, second)

    def __call__(self, results: dict[str, Any]) -> dict[str, Any]:
        _check_not_padded(results, "Resize")
        image = results["img"].float()
        height, width = image.shape[-2:]
        new_h, new_w = self._target_size(height, width)
        if (new_h, new_w) != (height, width):
            image = F.interpolate(image[None], size=(new_h, new_w), mode="bilinear",
                                  align_corners=False)[0]
        results["img"] = image
        sx, sy = new_w / width, new_h / height
        results["img_shape"] = (new_h, new_w)
        old_sx, old_sy = results.get("scale_factor", (1.0, 1.0))
        results["scale_factor"] = (old_sx * sx, old_sy * sy)
        factors = torch.tensor([sx, sy, sx, sy], dtype=torch.float32)
        for key in ("gt_boxes", "ignored_boxes", "proposals"):
            if key in results:
                results[key] = results[key] * factors
        if "gt_masks" in results:
            results["gt_masks"] = _resize_masks(results["gt_masks"], new_h, new_w)
        if "gt_seg" in results:
            results["gt_seg"] = _resize_masks(results["gt_seg"][None], new_h, new_w)[0]
        return drop_degenerate_boxes(results)

    def __repr__(self) -> str:
        return (f"Resize(scale={self.scales}, keep_ratio={self.keep_ratio}, "
                f"scale_range={self.scale_range})")


@TRANSFORMS.register
class RandomResize(Resize):
    """Scale jitter: resize to ``ratio * scale`` with ``ratio`` drawn uniformly per image.

    With ``ratio_range=(0.1, 2.0)`` and a following ``RandomCrop`` of the base size this is
    large-scale jitter (LSJ); ``Resize(scale_range=...)`` is the milder short-side jitter.

    Args:
        scale: the base ``(long, short)`` bound (or exact ``(width, height)`` with
            ``keep_ratio=False``).
        ratio_range: ``(min, max)`` factor applied to both sides of ``scale``.
        keep_ratio: as in ``Resize``.
    """

    def __init__(
        self,
        scale: Sequence[float] = (1333, 800),
        ratio_range: Sequence[float] = (0.8, 1.25),
        keep_ratio: bool = True,
    ) -> None:
        super().__init__(scale=scale, keep_ratio=keep_ratio)
        if len(self.scales) != 1:
            raise ConfigError(f"RandomResize takes one base scale pair, got {scale!r}")
        if len(ratio_range) != 2 or not 0 < ratio_range[0] <= ratio_range[1]:
            raise ConfigError("RandomResize ratio_range must be (min, max) with "
                              f"0 < min <= max, got {ratio_range!r}")
        self.ratio_range = (float(ratio_range[0]), float(ratio_range[1]))

    def _target_size(self, height: int, width: int) -> tuple[int, int]:
        ratio = random.uniform(*self.ratio_range)
        first, second = (side * ratio for side in self.scales[0])
        if not self.keep_ratio:  # (width, height)
            return max(1, round(second)), max(1, round(first))
        new_h, new_w = resized_size(height, width, first, second)
        return max(1, new_h), max(1, new_w)

    def __repr__(self) -> str:
        return (f"RandomResize(scale={self.scales[0]}, ratio_range={self.ratio_range}, "
                f"keep_ratio={self.keep_ratio})")


@TRANSFORMS.register
class RandomFlip:
    """Flip with probability ``prob``; ``flip`` records the total flip for ``predict`` to undo.

    Args:
        prob: chance to flip an image.
        direction: ``'horizontal'``, ``'vertical'`` or ``'diagonal'`` (both axes), or a list of
            them, one drawn uniformly per flipped image. Vertical flips suit aerial or
            microscope images; street scenes want ``'horizontal'`` only.

    Flipping twice gives back the input exactly (boxes use ``x' = W - x``).
    """

    def __init__(
        self,
        prob: Annotated[float, Probability] = 0.5,
        direction: FlipDirection | Sequence[FlipDirection] = "horizontal",
    ) -> None:
        if not 0.0 <= prob <= 1.0:
            raise ConfigError(f"RandomFlip prob must be in [0, 1], got {prob}")
        directions = [direction] if isinstance(direction, str) else list(direction)
        bad = [d for d in directions if d not in ("horizontal", "vertical", "diagonal")]
        if bad or not directions:
            raise ConfigError(f"RandomFlip direction must be 'horizontal', 'vertical' or "
                              f"'diagonal' (or a list of them), got {direction!r}")
        self.prob = prob
        self.directions = directions

    def __call__(self, results: dict[str, Any]) -> dict[str, Any]:
        _check_not_padded(results, "RandomFlip")
        if self.prob <= 0 or random.random() >= self.prob:
            return results
        direction = self.directions[0] if len(self.directions) == 1 else random.choice(
            self.directions)
        dims = [d for axis, d in (("y", -2), ("x", -1)) if axis in FLIP_DIRECTIONS[direction]]
        results["img"] = results["img"].flip(dims)
        for key in ("gt_boxes", "ignored_boxes", "proposals"):
            if key in results:
                results[key] = flip_boxes(results[key], results["img_shape"], direction)
        if "gt_masks" in results:
            results["gt_masks"] = results["gt_masks"].flip(dims)
        if "gt_seg" in results:
            results["gt_seg"] = results["gt_seg"].flip(dims)
        results["flip"] = compose_flips(results.get("flip"), direction)
        return results

    def __repr__(self) -> str:
        direction = self.directions[0] if len(self.directions) == 1 else self.directions
        return f"RandomFlip(prob={self.prob}, direction={direction!r})"


@TRANSFORMS.register
class Pad:
    """Zero-pad the image (and masks) at the bottom/right to a multiple of ``size_divisor``.

    A semantic map (``gt_seg``) is padded with ``seg_pad_value`` (255: no label).

    ``img_shape`` keeps the unpadded size; ``pad_shape`` records the padded one. Usually
    unnecessary: ``collate`` pads every batch the same way.
    """

    def __init__(
        self, size_divisor: Annotated[int, Positive] = 32, pad_value: float = 0.0,
        seg_pad_value: int = 255,
    ) -> None:
        if size_divisor < 1:
            raise ConfigError(f"Pad size_divisor must be >= 1, got {size_divisor}")
        self.size_divisor = size_divisor
        self.pad_value = pad_value
        self.seg_pad_value = seg_pad_value

    def __call__(self, results: dict[str, Any]) -> dict[str, Any]:
        image = results["img"]
        height, width = image.shape[-2:]
        pad_h = math.ceil(height / self.size_divisor) * self.size_divisor - height
        pad_w = math.ceil(width / self.size_divisor) * self.size_divisor - width
        results["img"] = F.pad(image, (0, pad_w, 0, pad_h), value=self.pad_value)
        if "gt_masks" in results:
            results["gt_masks"] = F.pad(results["gt_masks"], (0, pad_w, 0, pad_h), value=0)
        if "gt_seg" in results:
            results["gt_seg"] = F.pad(results["gt_seg"], (0, pad_w, 0, pad_h),
                                      value=self.seg_pad_value)
        results["pad_shape"] = (height + pad_h, width + pad_w)
        return results

    def __repr__(self) -> str:
        return (f"Pad(size_divisor={self.size_divisor}, pad_value={self.pad_value}, "
                f"seg_pad_value={self.seg_pad_value})")
