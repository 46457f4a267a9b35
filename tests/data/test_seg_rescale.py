"""``SegRescale`` samples the semantic map at a stride without blending labels."""

from __future__ import annotations

import pytest
import torch

from detbox.data.transforms import Compose, Resize, SegRescale
from detbox.errors import ConfigError


def test_eighth_scale_picks_one_pixel_per_cell() -> None:
    seg = torch.arange(64 * 48, dtype=torch.int64).view(48, 64) % 251
    out = SegRescale(scale_factor=1 / 8)({"gt_seg": seg.to(torch.uint8)})
    assert out["gt_seg"].shape == (6, 8) and out["gt_seg"].dtype == torch.uint8
    # nearest at 1/8: output (i, j) copies input (8 i, 8 j)
    assert torch.equal(out["gt_seg"], seg[::8, ::8].to(torch.uint8))
    assert out["seg_scale_factor"] == 0.125


def test_odd_sizes_round_half_up_and_labels_stay_labels() -> None:
    seg = torch.full((13, 10), 255, dtype=torch.uint8)
    seg[:7, :5] = 3
    out = SegRescale(scale_factor=0.5)({"gt_seg": seg})["gt_seg"]
    assert out.shape == (7, 5)  # 6.5 -> 7, 5.0 -> 5
    assert set(out.unique().tolist()) == {3, 255}
    up = SegRescale(scale_factor=2)({"gt_seg": seg})["gt_seg"]
    assert up.shape == (26, 20)
    assert torch.equal(up[::2, ::2], seg)


def test_after_resize_and_without_a_map() -> None:
    results = {"img": torch.zeros(3, 40, 64, dtype=torch.uint8), "img_shape": (40, 64),
               "gt_seg": torch.ones(40, 64, dtype=torch.uint8)}
    out = Compose([Resize(scale=(128, 80)), SegRescale(scale_factor=1 / 8)])(results)
    assert out["img_shape"] == (80, 128) and out["gt_seg"].shape == (10, 16)
    assert SegRescale(scale_factor=0.5)({"img_shape": (4, 4)}) == {"img_shape": (4, 4)}


def test_bad_factor_and_twice_are_errors() -> None:
    with pytest.raises(ConfigError, match="scale_factor"):
        SegRescale(scale_factor=0)
    twice = Compose([SegRescale(scale_factor=0.5), SegRescale(scale_factor=0.5)])
    with pytest.raises(ConfigError, match="twice"):
        twice({"gt_seg": torch.zeros(8, 8, dtype=torch.uint8)})
