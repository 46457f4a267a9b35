"""Deformable convolutions with their own offset conv (``DCN`` / ``DCNv2``)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from detbox.errors import ConfigError
from detbox.models.layers import DeformConv, ModulatedDeformConv, deformable_like
from detbox.models.layers.frozen_bn_conv import conv_frozen_bn
from detbox.models.layers.norm import FrozenBatchNorm2d


def bilinear_deform_reference(x: torch.Tensor, weight: torch.Tensor, offset: torch.Tensor,
                              mask: torch.Tensor, stride: int, padding: int) -> torch.Tensor:
    """Deformable conv written out: for each output position and kernel point, sample the
    zero-padded input bilinearly at ``grid point + (dy, dx)``, scale by the mask, and sum with
    the weights. One deform group, one weight group, no dilation. Pure loops over the kernel."""
    batch, channels, height, width = x.shape
    out_channels, _, k, _ = weight.shape
    out_h, out_w = offset.shape[-2:]
    result = torch.zeros(batch, out_channels, out_h, out_w, dtype=torch.float64)
    ys = torch.arange(out_h, dtype=torch.float64)[:, None] * stride - padding
    xs = torch.arange(out_w, dtype=torch.float64)[None, :] * stride - padding
    for i in range(k):
        for j in range(k):
            point = i * k + j
            py = ys + i + offset[:, 2 * point]  # (B, out_h, out_w)
            px = xs + j + offset[:, 2 * point + 1]
            sampled = torch.zeros(batch, channels, out_h, out_w, dtype=torch.float64)
            y0, x0 = py.floor(), px.floor()
            for dy in (0, 1):
                for dx in (0, 1):
                    yy, xx = y0 + dy, x0 + dx
                    w = (1 - (py - yy).abs()) * (1 - (px - xx).abs())
                    inside = (yy >= 0) & (yy < height) & (xx >= 0) & (xx < width)
                    yi = yy.clamp(0, height - 1).long()
                    xi = xx.clamp(0, width - 1).long()
                    for b in range(batch):
                        values = x[b][:, yi[b], xi[b]].double()  # (C, out_h, out_w)
                        sampled[b] += values * (w[b] * inside[b])
            sampled = sampled * mask[:, point : point + 1]
            result += torch.einsum("bchw,oc->bohw", sampled, weight[:, :, i, j].double())
    return result.float()


@pytest.mark.parametrize("layer_type", [DeformConv, ModulatedDeformConv])
@pytest.mark.parametrize("stride", [1, 2])
def test_zero_offsets_give_the_plain_conv(layer_type, stride):
    torch.manual_seed(0)
    gain = {"mask_gain": 2.0} if layer_type is ModulatedDeformConv else {}  # 2 * sigmoid(0) = 1
    layer = layer_type(in_channels=6, out_channels=4, stride=stride, groups=2, **gain)
    x = torch.randn(2, 6, 9, 11)
    expected = F.conv2d(x, layer.weight, None, stride=stride, padding=1, groups=2)
    torch.testing.assert_close(layer(x), expected, rtol=1e-5, atol=1e-5)
    assert layer(x).shape == (2, 4, *expected.shape[-2:])


def test_v2_masks_start_at_the_papers_half_and_gain_two_gives_the_plain_conv():
    torch.manual_seed(0)
    modulated = ModulatedDeformConv(in_channels=3, out_channels=5)
    assert modulated.conv_offset.out_channels == 3 * 9
    x = torch.randn(1, 3, 8, 8)
    plain = F.conv2d(x, modulated.weight, padding=1)
    # the paper's masks by default: sigmoid(0) = 0.5
    torch.testing.assert_close(modulated(x), 0.5 * plain, rtol=1e-5, atol=1e-5)
    modulated.mask_gain = 2.0  # 2 * sigmoid(0) = 1
    torch.testing.assert_close(modulated(x), plain, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("modulated", [False, True])
def test_learned_offsets_and_masks_match_a_bilinear_reference(modulated):
    torch.manual_seed(1)
    cls = ModulatedDeformConv if modulated else DeformConv
    layer = cls(in_channels=3, out_channels=4, stride=2)
    nn.init.normal_(layer.conv_offset.weight, std=0.3)
    nn.init.normal_(layer.conv_offset.bias, std=0.5)
    x = torch.randn(2, 3, 7, 8)
    raw = layer.conv_offset(x)
    if modulated:
        offset, logits = raw[:, :18], raw[:, 18:]
        mask = torch.sigmoid(logits)  # the paper's masks (mask_gain 1)
    else:
        offset, mask = raw, torch.ones(2, 9, *raw.shape[-2:])
    assert offset.abs().max() > 0.5  # the points really move
    expected = bilinear_deform_reference(x, layer.weight.detach(), offset.detach().double(),
                                         mask.detach().double(), stride=2, padding=1)
    torch.testing.assert_close(layer(x), expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("layer_type", [DeformConv, ModulatedDeformConv])
def test_gradient_reaches_the_offset_conv(layer_type):
    torch.manual_seed(0)
    layer = layer_type(in_channels=4, out_channels=4, deform_groups=2)
    x = torch.randn(1, 4, 6, 6)
    layer(x).square().sum().backward()
    assert layer.conv_offset.weight.grad.abs().sum() > 0
    assert layer.conv_offset.bias.grad.abs().sum() > 0
    assert layer.weight.grad.abs().sum() > 0


def test_frozen_bn_folded_forward_runs_the_deformable_conv():
    torch.manual_seed(0)
    layer = ModulatedDeformConv(in_channels=4, out_channels=6, groups=2)
    nn.init.normal_(layer.conv_offset.weight, std=0.2)
    norm = FrozenBatchNorm2d(6)
    norm.weight.copy_(torch.rand(6) + 0.5)
    norm.bias.copy_(torch.randn(6))
    norm.running_mean.copy_(torch.randn(6))
    norm.running_var.copy_(torch.rand(6) + 0.5)
    x = torch.randn(2, 4, 7, 7)
    expected = norm(layer(x))
    folded = conv_frozen_bn(layer, norm, x)
    torch.testing.assert_close(folded, expected, rtol=1e-5, atol=1e-5)
    folded.sum().backward()
    assert layer.conv_offset.weight.grad.abs().sum() > 0


def test_deformable_like_copies_geometry_and_weights():
    torch.manual_seed(0)
    conv = nn.Conv2d(8, 8, 3, stride=2, padding=2, dilation=2, groups=4, bias=False)
    layer = deformable_like(conv, {"type": "DCN", "deform_groups": 2})
    assert isinstance(layer, DeformConv) and layer.deform_groups == 2
    assert (layer.stride, layer.padding, layer.dilation, layer.groups) == ((2, 2), (2, 2),
                                                                           (2, 2), 4)
    assert torch.equal(layer.weight, conv.weight) and layer.bias is None
    x = torch.randn(1, 8, 10, 10)
    torch.testing.assert_close(layer(x), conv(x), rtol=1e-5, atol=1e-5)


def test_config_errors_are_clear():
    conv = nn.Conv2d(4, 4, 3, padding=1)
    with pytest.raises(ConfigError, match="takes its geometry from the conv"):
        deformable_like(conv, {"type": "DCN", "stride": 2})
    with pytest.raises(ConfigError, match="Did you mean 'deform_groups'"):
        deformable_like(conv, {"type": "DCN", "deform_group": 1})
    with pytest.raises(ConfigError, match="not a deformable conv"):
        deformable_like(conv, {"type": "ResNet"})
    with pytest.raises(ConfigError, match="Did you mean 'DCN"):
        deformable_like(conv, {"type": "DNC"})
    with pytest.raises(ConfigError, match="deform_groups=3 must divide in_channels=4"):
        DeformConv(in_channels=4, out_channels=4, deform_groups=3)
