"""HRFPN: output shapes and strides, and the concatenation / pooling against a plain reference."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from detbox.errors import ConfigError
from detbox.models.necks import HRFPN
from detbox.registry import MODELS

IN_CHANNELS = [4, 8, 16, 32]


def _branches(size: tuple[int, int] = (16, 24), seed: int = 0) -> list[torch.Tensor]:
    """HRNet-like maps: branch i has IN_CHANNELS[i] channels at 1 / 2**i of ``size``."""
    generator = torch.Generator().manual_seed(seed)
    return [torch.randn(2, c, size[0] // 2**i, size[1] // 2**i, generator=generator)
            for i, c in enumerate(IN_CHANNELS)]


def reference(neck, feats: list[torch.Tensor], pooling: str) -> list[torch.Tensor]:
    """Upsample branch i by 2**i, concatenate, 1x1 conv; level k: the mean (or max) of each
    2**k x 2**k block of that map, then level k's 3x3 conv."""
    ups = [F.interpolate(x, scale_factor=2**i, mode="bilinear", align_corners=False) if i else x
           for i, x in enumerate(feats)]
    reduced = F.conv2d(torch.cat(ups, 1), neck.reduction_conv.weight, neck.reduction_conv.bias)
    outs = []
    for k, conv in enumerate(neck.fpn_convs):
        b, c, h, w = reduced.shape
        s = 2**k
        blocks = reduced.reshape(b, c, h // s, s, w // s, s)
        level = blocks.mean((3, 5)) if pooling == "avg" else blocks.amax((3, 5))
        outs.append(F.conv2d(level, conv.weight, conv.bias, padding=1))
    return outs


@pytest.mark.parametrize("pooling", ["avg", "max"])
def test_matches_the_reference(pooling):
    torch.manual_seed(0)
    neck = MODELS.build({"type": "HRFPN", "in_channels": IN_CHANNELS, "out_channels": 6,
                         "num_outs": 4, "pooling": pooling})
    for conv in [neck.reduction_conv, *neck.fpn_convs]:
        torch.nn.init.normal_(conv.bias)
    feats = _branches((16, 32))
    with torch.no_grad():
        outs, expected = neck(feats), reference(neck, feats, pooling)
    assert [tuple(o.shape) for o in outs] == [(2, 6, 16 // 2**k, 32 // 2**k) for k in range(4)]
    for actual, wanted in zip(outs, expected):
        torch.testing.assert_close(actual, wanted, rtol=1e-5, atol=1e-5)


def test_five_levels_at_strides_4_to_64_and_odd_sizes_round_up():
    neck = MODELS.build({"type": "HRFPN", "in_channels": IN_CHANNELS})
    feats = [torch.randn(1, c, 25 // 2**i + (i > 0), 17 // 2**i + (i > 0))
             for i, c in enumerate(IN_CHANNELS)]  # a 100 x 68 image: 25x17, 13x9, 7x5, 4x3
    with torch.no_grad():
        outs = neck(feats)
    assert [tuple(o.shape[1:]) for o in outs] == [
        (256, 25, 17), (256, 13, 9), (256, 7, 5), (256, 4, 3), (256, 2, 2)]


def test_norm_and_errors():
    neck = MODELS.build({"type": "HRFPN", "in_channels": IN_CHANNELS, "out_channels": 32,
                         "norm": "GN"})
    assert isinstance(neck, HRFPN) and isinstance(neck.reduction_conv[1], torch.nn.GroupNorm)
    assert neck.reduction_conv[0].bias is None
    with pytest.raises(ValueError, match="HRFPN expects 4 input maps, got 3"):
        neck(_branches()[:3])
    with pytest.raises(ConfigError, match="pooling"):
        MODELS.build({"type": "HRFPN", "in_channels": IN_CHANNELS, "pooling": "mean"})
