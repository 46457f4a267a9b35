"""Winograd 3x3 convolutions (NNPACK) on the single-threaded inference fast path."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from detbox.models import winograd_conv
from detbox.models.fused_conv import (
    FusedBasicBlock,
    FusedConvReLU,
    OneDNNConv2d,
    conv_relu,
    route_to_onednn,
)
from detbox.models.inference_mode import prepare_for_inference
from detbox.models.winograd_conv import (
    enable_winograd,
    pointwise_conv_nchw,
    winograd_applies,
)

from .test_inference_mode import _match_fraction, tiny_frozen_detector

CHANNELS_LAST = torch.channels_last

# NNPACK ships in PyTorch's Linux, macOS and Windows x86/ARM builds; without it the path is off
# and these tests would prove nothing, so they say so instead of passing.
pytestmark = pytest.mark.skipif(not torch.backends.nnpack.is_available(),
                                reason="NNPACK is not built into this PyTorch")


def _relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(((a - b).abs().max() / b.abs().max()).detach())


def _marked_conv(in_ch: int = 128, out_ch: int = 64) -> OneDNNConv2d:
    torch.manual_seed(0)
    conv = nn.Conv2d(in_ch, out_ch, 3, padding=1)
    route_to_onednn(conv)
    enable_winograd(conv)
    return conv.eval().to(memory_format=CHANNELS_LAST)


def _map(channels: int, side: int) -> torch.Tensor:
    return torch.randn(1, channels, side, side).contiguous(memory_format=CHANNELS_LAST)


def test_winograd_runs_large_3x3_maps_on_one_thread_within_float_rounding(single_thread):
    conv = _marked_conv()
    torch.manual_seed(2)
    x = torch.randn(2, 128, 45, 53).contiguous(memory_format=CHANNELS_LAST)  # 2385 pixels
    assert winograd_applies(conv, x) is False  # autograd on: never
    with torch.no_grad():
        assert winograd_applies(conv, x)
        out = conv(x)
        fused = conv_relu(conv, x)
    expected = F.conv2d(x.double(), conv.weight.double(), conv.bias.double(), padding=1)
    assert out.is_contiguous() and not out.is_contiguous(memory_format=CHANNELS_LAST)  # NNPACK's
    assert 0 < _relative_error(out.double(), expected) < 1e-4
    assert torch.equal(fused, out.clamp(min=0))


@pytest.mark.parametrize("change", ["two threads", "small map", "few channels", "strided",
                                    "unmarked"])
def test_winograd_stays_off_where_the_direct_kernel_is_as_fast(change, single_thread):
    conv, x = _marked_conv(), _map(128, 48)
    if change == "two threads":
        torch.set_num_threads(2)
    elif change == "small map":
        x = _map(128, 40)  # 1600 pixels
    elif change == "few channels":
        conv, x = _marked_conv(in_ch=64), _map(64, 48)
    elif change == "strided":
        conv.stride = (2, 2)
    else:
        conv.winograd = False
    with torch.no_grad():
        assert not winograd_applies(conv, x)
        out = conv(x)
    assert out.is_contiguous(memory_format=CHANNELS_LAST)  # oneDNN's channels-last kernel


def test_pointwise_conv_on_nchw_maps_equals_conv2d():
    torch.manual_seed(0)
    x, weight, bias = torch.randn(2, 32, 9, 7), torch.randn(5, 32, 1, 1), torch.randn(5)
    for w in (weight, weight.contiguous(memory_format=CHANNELS_LAST)):
        for b in (bias, None):
            got = pointwise_conv_nchw(x, w, b)
            assert got.shape == (2, 5, 9, 7) and got.is_contiguous()
            assert torch.allclose(got, F.conv2d(x, weight, b), atol=1e-5)


def test_a_marked_1x1_conv_reads_an_nchw_map_as_a_gemm(single_thread):
    torch.manual_seed(0)
    conv = nn.Conv2d(128, 9, 1)
    route_to_onednn(conv)
    enable_winograd(conv)
    conv.eval().to(memory_format=CHANNELS_LAST)
    x = torch.randn(1, 128, 48, 48)  # NCHW, as a Winograd conv leaves it
    with torch.no_grad():
        out = conv(x)
        channels_last = conv(x.contiguous(memory_format=CHANNELS_LAST))
    assert out.is_contiguous() and not out.is_contiguous(memory_format=CHANNELS_LAST)
    assert channels_last.is_contiguous(memory_format=CHANNELS_LAST)
    assert torch.allclose(out, channels_last, atol=1e-5)


def test_fast_path_marks_convs_outside_residual_blocks():
    model = prepare_for_inference(tiny_frozen_detector("faster")[0])
    blocks = [m for m in model.modules() if isinstance(m, FusedBasicBlock)]
    assert blocks
    in_blocks = {id(c) for b in blocks for c in b.modules() if isinstance(c, nn.Conv2d)}
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert all(not getattr(c, "winograd", False) for c in convs if id(c) in in_blocks)
    assert all(c.winograd for c in convs if id(c) not in in_blocks)
    assert any(isinstance(m, FusedConvReLU) and m.conv.winograd for m in model.modules())
    unmarked = prepare_for_inference(tiny_frozen_detector("faster")[0], winograd=False)
    assert not any(getattr(c, "winograd", False) for c in unmarked.modules())


@pytest.mark.parametrize("kind", ["faster", "mask"])
def test_winograd_fast_path_keeps_detections(kind, single_thread, monkeypatch):
    # The tiny detector's maps are small: lower the thresholds so every 3x3 conv outside the
    # residual blocks (FPN outputs, RPN conv) and the 1x1 convs after them take the new path.
    monkeypatch.setattr(winograd_conv, "MIN_CHANNELS", 1)
    monkeypatch.setattr(winograd_conv, "MIN_PIXELS", 1)
    calls = []
    nnpack = torch._nnpack_spatial_convolution
    monkeypatch.setattr(torch, "_nnpack_spatial_convolution",
                        lambda *args: calls.append(args[0].shape) or nnpack(*args))
    model, batch = tiny_frozen_detector(kind)
    with torch.no_grad():
        expected = model.predict(batch)[0]
        got = prepare_for_inference(copy.deepcopy(model)).predict(batch)[0]
    assert len(calls) >= 9  # 4 FPN output convs (P6 is pooled) and the RPN conv on 5 levels
    assert len(expected) > 10
    assert _match_fraction(expected, got) >= 0.99
