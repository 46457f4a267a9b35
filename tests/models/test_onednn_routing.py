"""The fast path's oneDNN routing: plain convs and linears, FPN lateral + sum, RoIAlign input."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from detbox.models.fused_conv import (
    OneDNNConv2d,
    OneDNNLinear,
    conv_add,
    conv_transpose_relu,
    route_to_onednn,
)
from detbox.models.inference_mode import prepare_for_inference
from detbox.models.roi_heads.roi_extractor import MultiLevelRoIExtractor
from detbox.registry import MODELS

from .two_stage._tiny import tiny_two_stage_cfg

pytestmark = pytest.mark.skipif(not torch.backends.mkldnn.is_available(),
                                reason="oneDNN is not built into this PyTorch")


def _close(a: torch.Tensor, b: torch.Tensor, rel: float = 1e-5) -> bool:
    return float((a - b).abs().max()) <= rel * float(b.abs().max().clamp(min=1e-12))


def test_routed_layers_keep_outputs_parameters_and_names():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(8, 16, 1), nn.Conv2d(16, 4, 3, padding=1, stride=2),
                          nn.Flatten(), nn.Linear(4 * 5 * 6, 32), nn.ReLU(), nn.Linear(32, 3))
    routed = copy.deepcopy(model)
    keys = list(model.state_dict())
    assert route_to_onednn(routed) == 4
    assert [type(m) for m in routed] == [OneDNNConv2d, OneDNNConv2d, nn.Flatten, OneDNNLinear,
                                         nn.Identity, OneDNNLinear]
    assert routed[3].post_op == "relu" and routed[5].post_op == "none"
    assert list(routed.state_dict()) == keys
    x = torch.randn(2, 8, 10, 11)
    with torch.no_grad():
        expected = model(x)
        assert _close(routed(x), expected)
        assert _close(routed(x.contiguous(memory_format=torch.channels_last)), expected)


def test_routed_layers_train_with_the_plain_layers_gradients(single_thread):
    # one thread: PyTorch would give the 1x1 conv to its BLAS GEMM, the routed one runs oneDNN
    torch.manual_seed(0)
    plain = nn.Sequential(nn.Conv2d(6, 8, 1), nn.ReLU(), nn.Conv2d(8, 4, 3, padding=1),
                          nn.Flatten(), nn.Linear(4 * 7 * 5, 9), nn.ReLU(), nn.Linear(9, 3))
    routed = copy.deepcopy(plain)
    assert route_to_onednn(routed) == 4
    x = torch.randn(2, 6, 7, 5)
    for model in (plain, routed):
        model(x).square().sum().backward()
    for (name, ref), got in zip(plain.named_parameters(), routed.parameters()):
        assert _close(got.grad, ref.grad, rel=1e-4), name
    with torch.no_grad():  # inference still runs the fused kernels
        assert _close(routed(x), plain(x))


def test_conv_add_equals_conv_plus_other_and_falls_back_for_other_modules():
    torch.manual_seed(0)
    conv = nn.Conv2d(8, 6, 1)
    x = torch.randn(1, 8, 9, 7).contiguous(memory_format=torch.channels_last)
    other = torch.randn(1, 6, 9, 7)
    with torch.no_grad():
        assert _close(conv_add(conv, x, other), conv(x) + other)
        seq = nn.Sequential(conv, nn.GroupNorm(2, 6))  # not a plain conv: run as written
        assert torch.equal(conv_add(seq, x, other), seq(x) + other)


def test_roi_extractor_reads_channels_last_maps_exactly():
    torch.manual_seed(0)
    extractor = MultiLevelRoIExtractor(output_size=7, featmap_strides=(4, 8))
    feats = [torch.randn(2, 5, 32, 40), torch.randn(2, 5, 16, 20)]
    rois = torch.tensor([[0, 1.0, 2.0, 30.0, 40.0], [1, 4.0, 4.0, 120.0, 100.0],
                         [1, 10.0, 3.0, 22.0, 17.0], [0, 50.0, 60.0, 150.0, 120.0]])
    expected = extractor(feats, rois)
    last = [f.contiguous(memory_format=torch.channels_last) for f in feats]
    assert not last[0].is_contiguous()
    assert torch.equal(extractor(last, rois), expected)
    assert torch.isfinite(expected).all()


def test_roi_extractor_returns_channels_last_gradients_equal_to_the_nchw_ones():
    torch.manual_seed(0)
    extractor = MultiLevelRoIExtractor(output_size=7, featmap_strides=(4, 8))
    rois = torch.tensor([[0, 1.0, 2.0, 30.0, 40.0], [1, 4.0, 4.0, 150.0, 125.0],
                         [1, 10.0, 3.0, 22.0, 17.0], [0, 20.0, 10.0, 160.0, 127.0]])
    feats = [torch.randn(2, 5, 32, 40, requires_grad=True),
             torch.randn(2, 5, 16, 20, requires_grad=True)]
    weights = torch.randn(4, 5, 7, 7)
    (extractor(feats, rois) * weights).sum().backward()
    last = [f.detach().contiguous(memory_format=torch.channels_last).requires_grad_()
            for f in feats]
    (extractor(last, rois) * weights).sum().backward()
    for nchw, channels_last in zip(feats, last):
        assert channels_last.grad.is_contiguous(memory_format=torch.channels_last)
        assert torch.equal(channels_last.grad, nchw.grad)
        assert nchw.grad.abs().sum() > 0


def test_fast_path_routes_the_box_head_and_keeps_its_output():
    torch.manual_seed(0)
    model = MODELS.build(tiny_two_stage_cfg("faster")).eval()
    fast = prepare_for_inference(copy.deepcopy(model))
    head, fast_head = model.roi_head.bbox_head, fast.roi_head.bbox_head
    assert len(head.fcs) >= 2
    assert [type(m) for m in fast_head.fcs][:2] == [OneDNNLinear, nn.Identity]
    assert type(fast_head.fc_cls) is OneDNNLinear and type(fast_head.fc_reg) is OneDNNLinear
    roi_feats = torch.randn(7, head.fcs[0].in_features)
    with torch.no_grad():
        for got, ref in zip(fast_head.forward(roi_feats.view(7, -1, 1, 1)),
                            head.forward(roi_feats.view(7, -1, 1, 1))):
            assert _close(got, ref)


def test_conv_transpose_relu_equals_relu_of_deconv():
    torch.manual_seed(0)
    deconv = nn.ConvTranspose2d(6, 5, 2, stride=2)
    x = torch.randn(3, 6, 7, 7)
    with torch.no_grad():
        expected = torch.relu(deconv(x))
        assert _close(conv_transpose_relu(deconv, x), expected)
        assert _close(conv_transpose_relu(deconv, x.contiguous(memory_format=torch.channels_last)),
                      expected)
    got = conv_transpose_relu(deconv, x)  # autograd: the plain path
    assert torch.equal(got, torch.relu(deconv(x))) and got.requires_grad
