"""Batching: images of different sizes share one zero-padded tensor."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from detbox.data.skipping import UnreadableImage
from detbox.structures import DetSample, ImageBatch

__all__ = ["collate"]


def collate(items: Sequence[tuple[Tensor, DetSample]], size_divisor: int = 32) -> ImageBatch:
    """Stack ``(image (3, h, w), DetSample)`` pairs into an ImageBatch.

    Images are zero-padded at the bottom and right to the largest height and width in the
    batch, rounded up to a multiple of ``size_divisor`` (FPN strides need that); with
    ``size_divisor`` 0 or 1 they are padded only to the largest size. Zero is the padding value
    on the normalized scale, i.e. the mean colour. Samples (and their masks) are unchanged:
    ``img_shape`` still tells each image's valid region.

    An ``UnreadableImage`` among the items (a test-mode dataset's unreadable file) goes to
    ``ImageBatch.skipped`` instead; a batch of only those has no images.

    Returns:
        ImageBatch with ``images`` (B, 3, H, W) in the dtype of the first image.
    """
    if not items:
        raise ValueError("collate needs at least one (image, sample) pair")
    skipped = [item for item in items if isinstance(item, UnreadableImage)]
    if skipped:
        items = [item for item in items if not isinstance(item, UnreadableImage)]
        if not items:
            return ImageBatch(images=torch.zeros((0, 3, 0, 0)), samples=[], skipped=skipped)
    images = [image for image, _ in items]
    height = max(int(image.shape[-2]) for image in images)
    width = max(int(image.shape[-1]) for image in images)
    if size_divisor and size_divisor > 1:
        height = math.ceil(height / size_divisor) * size_divisor
        width = math.ceil(width / size_divisor) * size_divisor
    batch = images[0].new_zeros((len(images), images[0].shape[0], height, width))
    for slot, image in zip(batch, images):
        slot[:, : image.shape[-2], : image.shape[-1]].copy_(image)
    return ImageBatch(images=batch, samples=[sample for _, sample in items], skipped=skipped)
