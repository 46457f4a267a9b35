"""Pasting per-box mask probabilities back into whole-image masks."""

import pytest
import torch
from torchvision.models.detection.roi_heads import paste_masks_in_image

from detbox.models.mask_ops import paste_masks


def test_full_mask_fills_exactly_its_integer_box():
    masks = torch.ones(1, 28, 28)
    out = paste_masks(masks, torch.tensor([[10.0, 20.0, 30.0, 25.0]]), (40, 50))
    assert out.dtype == torch.bool and out.shape == (1, 40, 50)
    expected = torch.zeros(40, 50, dtype=torch.bool)
    expected[20:25, 10:30] = True
    assert torch.equal(out[0], expected)


def test_left_half_mask_lands_in_the_left_half_of_the_box():
    masks = torch.zeros(1, 4, 4)
    masks[0, :, :2] = 1.0
    out = paste_masks(masks, torch.tensor([[4.0, 2.0, 12.0, 10.0]]), (16, 16))
    expected = torch.zeros(16, 16, dtype=torch.bool)
    expected[2:10, 4:8] = True
    assert torch.equal(out[0], expected)


def test_boxes_partly_outside_the_image_are_cropped():
    masks = torch.ones(2, 8, 8)
    boxes = torch.tensor([[-5.0, -5.0, 5.0, 5.0], [60.0, 60.0, 70.0, 70.0]])
    out = paste_masks(masks, boxes, (32, 32))
    assert out[0].sum() == 25 and out[0, :5, :5].all()
    assert not out[1].any()


def test_probabilities_without_threshold_and_empty_input():
    probs = paste_masks(
        torch.full((1, 4, 4), 0.3), torch.tensor([[0.0, 0, 8, 8]]), (8, 8), threshold=None
    )
    # Inside, the constant map; at the box border it blends towards the zero outside.
    assert probs.dtype == torch.float32 and torch.allclose(probs[0, 1:-1, 1:-1], torch.tensor(0.3))
    assert torch.allclose(probs[0, 0, 1:-1], torch.tensor(0.3 * 0.75))
    for mode in ("grid", "torchvision"):
        empty = paste_masks(torch.zeros(0, 28, 28), torch.zeros(0, 4), (7, 9), mode=mode)
        assert empty.shape == (0, 7, 9) and empty.dtype == torch.bool


def test_torchvision_mode_reproduces_torchvision_paste():
    torch.manual_seed(0)
    masks = torch.rand(5, 28, 28)
    boxes = torch.tensor(
        [
            [3.3, 4.7, 40.2, 30.9],
            [0.0, 0, 63.9, 47.5],
            [10, 10, 11, 11],
            [-4, 30, 20, 60],
            [50.5, 2.2, 70, 20],
        ]
    )
    expected = paste_masks_in_image(masks[:, None], boxes, (48, 64))[:, 0]
    ours = paste_masks(masks, boxes, (48, 64), threshold=None, mode="torchvision")
    assert torch.allclose(ours, expected, atol=1e-6)


def test_unknown_mode_is_rejected():
    with pytest.raises(ValueError, match="paste mode"):
        paste_masks(torch.ones(1, 4, 4), torch.tensor([[0.0, 0, 4, 4]]), (4, 4), mode="nearest")


@pytest.mark.parametrize("mode", ["grid", "torchvision"])
@pytest.mark.parametrize("threshold", [0.5, 0.2, 0.0])
def test_binarized_paste_equals_thresholded_probabilities(mode, threshold):
    generator = torch.Generator().manual_seed(0)
    masks = torch.rand(6, 28, 28, generator=generator)
    boxes = torch.tensor([[3.2, 4.7, 20.1, 30.9], [-5.0, 2.0, 12.0, 9.5],
                          [40.0, 30.0, 70.0, 60.0], [10.0, 10.0, 10.5, 10.2],
                          [0.0, 0.0, 64.0, 48.0], [30.0, 5.0, 31.0, 47.0]])
    probabilities = paste_masks(masks, boxes, (48, 64), threshold=None, mode=mode)
    binary = paste_masks(masks, boxes, (48, 64), threshold=threshold, mode=mode)
    assert binary.dtype == torch.bool and binary.shape == (6, 48, 64)
    assert torch.equal(binary, probabilities >= threshold)
