"""oneDNN GEMMs with gradients: linear layers and 1x1 convolutions for CPU training.

PyTorch runs every ``nn.Linear`` and, with one thread and a batch under 16, every unstrided
1x1 convolution (a ResNet bottleneck's ends, an FPN lateral) through its BLAS GEMM, forward and
backward. On some CPUs (AMD EPYC with MKL) that GEMM runs at half of oneDNN's speed. The
functions here compute the same products with oneDNN's matmul and convolution kernels
(``torch.ops.mkldnn``), forward and backward, so a training step gets the faster kernels too;
results equal PyTorch's up to float rounding.

Callers check :func:`onednn_usable` first (CPU, float32, dense, eager); everything else runs
the plain ``F.linear`` / ``F.conv2d``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from detbox.models.graph_capture import capturing_graph

__all__ = ["onednn_conv1x1", "onednn_linear", "onednn_usable"]


def onednn_usable(weight: Tensor, x: Tensor) -> bool:
    """Whether oneDNN's kernels may compute a layer of ``weight`` on ``x``: both CPU float32
    dense tensors, oneDNN built and enabled, not traced, exported or compiled."""
    return (x.device.type == "cpu" and x.dtype == torch.float32 and x.layout == torch.strided
            and weight.dtype == torch.float32 and torch.backends.mkldnn.is_available()
            and torch.backends.mkldnn.enabled and not capturing_graph())


def _matmul(a: Tensor, b: Tensor) -> Tensor:
    """``a @ b`` for (M, K) ``a`` and (K, N) ``b`` on oneDNN's GEMM."""
    return torch.ops.mkldnn._linear_pointwise(a, b.t(), None, "none", [], "")


class _Linear(torch.autograd.Function):
    """``x @ weight.T + bias`` for (M, K) ``x``, (N, K) ``weight``, (N,) or None ``bias``."""

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        return torch.ops.mkldnn._linear_pointwise(x, weight, bias, "none", [], "")

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, Tensor | None, Tensor | None]:
        x, weight = ctx.saved_tensors
        grad = grad.contiguous()
        grad_x = _matmul(grad, weight) if ctx.needs_input_grad[0] else None
        grad_weight = _matmul(grad.t(), x) if ctx.needs_input_grad[1] else None
        grad_bias = grad.sum(0) if ctx.has_bias and ctx.needs_input_grad[2] else None
        return grad_x, grad_weight, grad_bias


def onednn_linear(x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    """``F.linear`` on oneDNN, differentiable: (..., K) ``x`` -> (..., N)."""
    out = _Linear.apply(x.reshape(-1, x.shape[-1]), weight, bias)
    return out.reshape(*x.shape[:-1], weight.shape[0])


def _conv1x1(x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    return torch.ops.mkldnn._convolution_pointwise(x, weight, bias, [0, 0], [1, 1], [1, 1], 1,
                                                   "none", [None], "")


class _Conv1x1(torch.autograd.Function):
    """An unstrided, unpadded 1x1 convolution: (B, Ci, H, W) ``x``, (Co, Ci, 1, 1) ``weight``
    -> (B, Co, H, W). Its input gradient is the 1x1 convolution by the transposed weight, its
    weight gradient the (Co, B*H*W) x (B*H*W, Ci) product of the output gradient and input."""

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        return _conv1x1(x, weight, bias)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, Tensor | None, Tensor | None]:
        x, weight = ctx.saved_tensors
        out_channels, in_channels = weight.shape[:2]
        grad_x = grad_weight = grad_bias = None
        if ctx.needs_input_grad[0]:
            transposed = weight.reshape(out_channels, in_channels).t().contiguous()
            grad_x = _conv1x1(grad, transposed[:, :, None, None], None)
        if ctx.needs_input_grad[1]:
            rows = grad.transpose(0, 1).reshape(out_channels, -1)  # (Co, B*H*W)
            cols = x.transpose(0, 1).reshape(in_channels, -1).t()  # (B*H*W, Ci)
            grad_weight = _matmul(rows, cols).reshape(weight.shape)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_bias = grad.sum((0, 2, 3))
        return grad_x, grad_weight, grad_bias


def onednn_conv1x1(x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    """``F.conv2d(x, weight, bias)`` for a (Co, Ci, 1, 1) ``weight`` (stride 1, no padding,
    one group) on oneDNN, differentiable: (B, Ci, H, W) -> (B, Co, H, W)."""
    return _Conv1x1.apply(x, weight, bias)
