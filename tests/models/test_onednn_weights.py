"""Weights packed once in oneDNN's layout for the inference fast path."""

from __future__ import annotations

import copy
import io

import pytest
import torch
from torch import nn

from detbox.models.fused_conv import conv_relu, route_to_onednn
from detbox.models.onednn_weights import packed_conv_weight, packed_linear_weight

pytestmark = pytest.mark.skipif(not torch.backends.mkldnn.is_available(),
                                reason="oneDNN is not built into this PyTorch")

CHANNELS_LAST = torch.channels_last


def _routed_conv() -> nn.Conv2d:
    torch.manual_seed(0)
    conv = nn.Conv2d(16, 8, 3, padding=1)
    route_to_onednn(conv)
    return conv.eval().requires_grad_(False).to(memory_format=CHANNELS_LAST)


def test_packed_weight_gives_the_plain_weights_results_bit_for_bit():
    conv = _routed_conv()
    x = torch.randn(2, 16, 11, 9).contiguous(memory_format=CHANNELS_LAST)
    with torch.no_grad():
        packed = packed_conv_weight(conv, conv.weight, x)
        assert packed.is_mkldnn and packed is packed_conv_weight(conv, conv.weight, x)  # once
        geometry = ([1, 1], [1, 1], [1, 1], 1)
        plain = torch.ops.mkldnn._convolution_pointwise(x, conv.weight, conv.bias, *geometry,
                                                        "relu", [None], "")
        assert torch.equal(conv_relu(conv, x), plain)
        other = torch.randn(2, 16, 5, 4).contiguous(memory_format=CHANNELS_LAST)  # other size
        assert torch.equal(conv(other), torch.ops.mkldnn._convolution_pointwise(
            other, conv.weight, conv.bias, *geometry, "none", [None], ""))


def test_nchw_inputs_foreign_and_trained_weights_are_not_packed():
    conv = _routed_conv()
    x = torch.randn(1, 16, 6, 6)
    assert packed_conv_weight(conv, conv.weight, x) is conv.weight  # NCHW input
    folded = conv.weight * 2  # a norm folded on the fly: not the layer's parameter
    x_cl = x.contiguous(memory_format=CHANNELS_LAST)
    assert packed_conv_weight(conv, folded, x_cl) is folded
    conv.requires_grad_(True)  # evaluated during training: the next step changes it
    with torch.no_grad():
        assert packed_conv_weight(conv, conv.weight, x_cl) is conv.weight
    conv.requires_grad_(False)
    assert packed_conv_weight(conv, conv.weight, x_cl).is_mkldnn


def test_a_changed_parameter_is_packed_again():
    conv = _routed_conv()
    x = torch.randn(1, 16, 7, 7).contiguous(memory_format=CHANNELS_LAST)
    with torch.no_grad():
        before = conv(x)
        state = {k: v * 3 for k, v in conv.state_dict().items()}
        conv.load_state_dict(state)  # copies in place: same storage, new version
        after = conv(x)
    assert torch.allclose(after, before * 3, rtol=1e-5, atol=1e-5)


def test_layers_with_packed_copies_still_copy_and_save():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(4, 4, 3, padding=1), nn.Flatten(), nn.Linear(4 * 25, 3))
    route_to_onednn(model)
    model.eval().requires_grad_(False).to(memory_format=CHANNELS_LAST)
    x = torch.randn(2, 4, 5, 5).contiguous(memory_format=CHANNELS_LAST)
    with torch.no_grad():
        out = model(x)
        assert packed_linear_weight(model[2], x.flatten(1)).is_mkldnn
        twin = copy.deepcopy(model)
        buffer = io.BytesIO()
        torch.save(model.state_dict(), buffer)
        assert torch.equal(twin(x), out)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)
    assert all(not t.is_mkldnn for t in state.values())


def test_weights_made_under_inference_mode_are_used_as_they_are():
    with torch.inference_mode():
        conv = _routed_conv()
        x = torch.randn(1, 16, 6, 6).contiguous(memory_format=CHANNELS_LAST)
        assert packed_conv_weight(conv, conv.weight, x) is conv.weight
        assert conv(x).shape == (1, 8, 6, 6)
