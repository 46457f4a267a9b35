import math

import pytest
import torch
from torchvision.models.detection._utils import BoxCoder as TVBoxCoder

from detbox.models.task_modules import DeltaXYWHBoxCoder


def random_boxes(num: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    xy = torch.rand(num, 2, generator=generator) * 100
    wh = torch.rand(num, 2, generator=generator) * 50 + 1
    return torch.cat([xy, xy + wh], dim=1)


def test_hand_computed_encode():
    coder = DeltaXYWHBoxCoder()
    deltas = coder.encode(torch.tensor([[0.0, 0, 10, 10]]), torch.tensor([[5.0, 5, 15, 25]]))
    torch.testing.assert_close(deltas, torch.tensor([[0.5, 1.0, 0.0, math.log(2.0)]]))


def test_round_trip_with_means_and_stds():
    coder = DeltaXYWHBoxCoder(target_means=(0.1, -0.1, 0.0, 0.2), target_stds=(0.1, 0.1, 0.2, 0.2))
    anchors, gt = random_boxes(50, 0), random_boxes(50, 1)
    torch.testing.assert_close(
        coder.decode(anchors, coder.encode(anchors, gt)), gt, atol=1e-4, rtol=0
    )


def test_identity_weights_match_torchvision_bit_for_bit():
    anchors, gt = random_boxes(200, 2), random_boxes(200, 3)
    deltas = torch.randn(200, 4, generator=torch.Generator().manual_seed(4))
    tv, ours = TVBoxCoder(weights=(1.0, 1.0, 1.0, 1.0)), DeltaXYWHBoxCoder()
    assert torch.equal(ours.decode(anchors, deltas), tv.decode_single(deltas, anchors))
    torch.testing.assert_close(ours.encode(anchors, gt), tv.encode_single(gt, anchors))


def test_stds_match_torchvision_weights():
    anchors, gt = random_boxes(200, 5), random_boxes(200, 6)
    deltas = torch.randn(200, 4, generator=torch.Generator().manual_seed(7))
    tv = TVBoxCoder(weights=(10.0, 10.0, 5.0, 5.0))
    ours = DeltaXYWHBoxCoder(target_stds=(0.1, 0.1, 0.2, 0.2))
    torch.testing.assert_close(ours.decode(anchors, deltas), tv.decode_single(deltas, anchors))
    torch.testing.assert_close(ours.encode(anchors, gt), tv.encode_single(gt, anchors))


def test_wh_clip_and_max_shape():
    coder = DeltaXYWHBoxCoder()
    box = torch.tensor([[0.0, 0, 10, 10]])
    wide = coder.decode(box, torch.tensor([[0.0, 0.0, 100.0, 0.0]]))
    assert (wide[0, 2] - wide[0, 0]).item() == pytest.approx(10 * 1000 / 16)
    clipped = coder.decode(box, torch.tensor([[0.0, 0.0, 3.0, 3.0]]), max_shape=(20, 30))
    assert clipped.tolist() == [[0.0, 0.0, 30.0, 20.0]]


def test_per_class_deltas_decode_like_separate_calls():
    coder = DeltaXYWHBoxCoder(target_stds=(0.1, 0.1, 0.2, 0.2))
    anchors = random_boxes(7, 8)
    deltas = torch.randn(7, 3 * 4, generator=torch.Generator().manual_seed(9))
    decoded = coder.decode(anchors, deltas, max_shape=(80, 90))
    assert decoded.shape == (7, 12)
    for k in range(3):
        single = coder.decode(anchors, deltas[:, 4 * k: 4 * k + 4], max_shape=(80, 90))
        torch.testing.assert_close(decoded[:, 4 * k: 4 * k + 4], single)


def test_empty_inputs():
    coder = DeltaXYWHBoxCoder()
    empty = torch.zeros(0, 4)
    assert coder.encode(empty, empty).shape == (0, 4)
    assert coder.decode(empty, empty, max_shape=(10, 10)).shape == (0, 4)
