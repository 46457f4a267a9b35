"""oneDNN's differentiable GEMMs: the same outputs and gradients as F.linear / F.conv2d."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from detbox.models.onednn_training import onednn_conv1x1, onednn_linear, onednn_usable

pytestmark = pytest.mark.skipif(not torch.backends.mkldnn.is_available(),
                                reason="oneDNN is not built into this PyTorch")


def _outputs_and_grads(fn, inputs, grad_out):
    for tensor in inputs:
        if tensor is not None:
            tensor.grad = None
    out = fn(*inputs)
    out.backward(grad_out)
    return [out.detach()] + [t.grad if t is not None and t.requires_grad else None
                             for t in inputs]


def _assert_same(got, expected, rel=1e-5):
    for g, e in zip(got, expected):
        if e is None:
            assert g is None
        else:
            assert g.shape == e.shape
            assert float((g - e).abs().max()) <= rel * float(e.abs().max())


@pytest.mark.parametrize("with_bias", [True, False])
def test_linear_matches_f_linear_on_batched_input(with_bias):
    torch.manual_seed(0)
    x = torch.randn(3, 7, 20, requires_grad=True)
    weight = torch.randn(11, 20, requires_grad=True)
    bias = torch.randn(11, requires_grad=True) if with_bias else None
    grad_out = torch.randn(3, 7, 11)
    _assert_same(_outputs_and_grads(onednn_linear, (x, weight, bias), grad_out),
                 _outputs_and_grads(F.linear, (x, weight, bias), grad_out))


def test_linear_skips_the_gradients_nobody_asked_for():
    torch.manual_seed(0)
    x = torch.randn(5, 4)  # an input that needs no gradient (a frozen trunk's features)
    weight = torch.randn(3, 4, requires_grad=True)
    bias = torch.randn(3)
    out = onednn_linear(x, weight, bias)
    out.sum().backward()
    assert x.grad is None and bias.grad is None
    assert torch.allclose(weight.grad, torch.ones(5, 3).t() @ x, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
@pytest.mark.parametrize("with_bias", [True, False])
def test_conv1x1_matches_f_conv2d(memory_format, with_bias):
    torch.manual_seed(0)
    x = torch.randn(2, 8, 5, 6).contiguous(memory_format=memory_format).requires_grad_()
    weight = torch.randn(4, 8, 1, 1, requires_grad=True)
    bias = torch.randn(4, requires_grad=True) if with_bias else None
    grad_out = torch.randn(2, 4, 5, 6)
    got = _outputs_and_grads(onednn_conv1x1, (x, weight, bias), grad_out)
    _assert_same(got, _outputs_and_grads(F.conv2d, (x, weight, bias), grad_out))
    assert got[0].is_contiguous(memory_format=memory_format)


def test_usable_only_for_eager_cpu_float32():
    weight = torch.zeros(2, 2)
    assert onednn_usable(weight, torch.zeros(1, 2))
    assert not onednn_usable(weight, torch.zeros(1, 2, dtype=torch.float64))
    assert not onednn_usable(weight.bfloat16(), torch.zeros(1, 2))
    assert not onednn_usable(weight, torch.zeros(1, 2).to_sparse())
