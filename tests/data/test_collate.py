"""collate: zero padding at the bottom/right to the batch maximum, rounded to the divisor."""

from __future__ import annotations

import pytest
import torch

from detbox.data import collate
from detbox.structures import DetSample, ImageBatch


def _item(height: int, width: int, value: float) -> tuple[torch.Tensor, DetSample]:
    sample = DetSample(image_id=height, file_name=f"{height}.png", ori_shape=(height, width),
                       img_shape=(height, width))
    return torch.full((3, height, width), value), sample


def test_pads_to_divisor_with_zeros() -> None:
    items = [_item(50, 70, 1.0), _item(64, 33, 2.0)]
    batch = collate(items, size_divisor=32)
    assert isinstance(batch, ImageBatch) and len(batch) == 2
    assert batch.images.shape == (2, 3, 64, 96)
    assert torch.equal(batch.images[0, :, :50, :70], items[0][0])
    assert batch.images[0, :, 50:].abs().sum() == 0 and batch.images[0, :, :, 70:].abs().sum() == 0
    assert torch.equal(batch.images[1, :, :64, :33], items[1][0])
    assert batch.images[1, :, :, 33:].abs().sum() == 0
    assert [s.image_id for s in batch.samples] == [50, 64]


@pytest.mark.parametrize("divisor", [0, 1])
def test_without_divisor_pads_to_largest(divisor: int) -> None:
    batch = collate([_item(50, 70, 1.0), _item(64, 33, 2.0)], size_divisor=divisor)
    assert batch.images.shape == (2, 3, 64, 70)


def test_exact_multiple_is_not_padded_further() -> None:
    assert collate([_item(64, 32, 1.0)]).images.shape == (1, 3, 64, 32)
