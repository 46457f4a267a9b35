"""Box geometry shared by the data pipeline, the detectors and the evaluators.

One definition of a flip and of the mapping from the transformed image back to the original
one, so that augmentations, ``predict`` and evaluation can never disagree about coordinates.
All boxes are (N, 4) absolute ``x1, y1, x2, y2`` pixels.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor
from torchvision.ops import clip_boxes_to_image

__all__ = ["FLIP_DIRECTIONS", "boxes_to_original", "check_flip", "compose_flips", "flip_boxes"]

# The axes each flip direction mirrors; ``None`` is no flip.
FLIP_DIRECTIONS: dict[str | None, frozenset[str]] = {
    None: frozenset(), "horizontal": frozenset("x"), "vertical": frozenset("y"),
    "diagonal": frozenset("xy"),
}


def check_flip(direction: str | None) -> frozenset[str]:
    """The axes mirrored by ``direction``; an unknown direction is a ValueError naming them."""
    if direction not in FLIP_DIRECTIONS:
        raise ValueError(f"unknown flip direction {direction!r}; use one of "
                         "'horizontal', 'vertical', 'diagonal'")
    return FLIP_DIRECTIONS[direction]


def compose_flips(first: str | None, second: str | None) -> str | None:
    """The single flip equal to flipping by ``first`` and then by ``second``.

    ``'horizontal'`` then ``'vertical'`` is ``'diagonal'``; any flip twice is no flip.
    """
    axes = check_flip(first) ^ check_flip(second)
    return next(name for name, name_axes in FLIP_DIRECTIONS.items() if name_axes == axes)


def flip_boxes(boxes: Tensor, img_shape: Sequence[int], direction: str | None) -> Tensor:
    """Mirror (N, 4) xyxy boxes inside an image of ``img_shape = (h, w)``: ``x' = w - x``.

    A flip is its own inverse, so the same call undoes one. ``direction=None`` returns
    ``boxes`` itself.
    """
    axes = check_flip(direction)
    if not axes:
        return boxes
    height, width = img_shape[0], img_shape[1]
    x1, y1, x2, y2 = boxes.unbind(dim=1)
    if "x" in axes:
        x1, x2 = width - x2, width - x1
    if "y" in axes:
        y1, y2 = height - y2, height - y1
    return torch.stack([x1, y1, x2, y2], dim=1)


def boxes_to_original(
    boxes: Tensor,
    img_shape: Sequence[int],
    scale_factor: Sequence[float],
    flip: str | None,
    ori_shape: Sequence[int] | None = None,
) -> Tensor:
    """Map (N, 4) boxes from the transformed image back to the original image.

    The data pipeline resizes first and flips the resized image, so the flip is undone in
    ``img_shape`` coordinates before dividing by ``scale_factor = (sx, sy)``. With
    ``ori_shape = (h, w)`` the result is clipped to it (predictions); without, it is not
    (ground truth, which is already inside the image).
    """
    boxes = flip_boxes(boxes, img_shape, flip)
    sx, sy = scale_factor
    boxes = boxes / boxes.new_tensor([sx, sy, sx, sy])
    if ori_shape is not None:
        boxes = clip_boxes_to_image(boxes, (int(ori_shape[0]), int(ori_shape[1])))
    return boxes
