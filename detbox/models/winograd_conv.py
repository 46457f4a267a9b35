"""Winograd 3x3 convolutions for single-threaded CPU inference (NNPACK, inside PyTorch).

A 3x3 convolution computed by Winograd's minimal filtering (NNPACK's F(6x6, 3x3) tiles, the
kernel ``torch._nnpack_spatial_convolution`` exposes) needs about a fifth of the direct
method's multiplications. On one CPU thread it runs a 256-channel 3x3 convolution on an FPN's
finest level 1.6x faster than oneDNN's direct kernel (the dense heads' towers, an FPN's output
convolutions), with results within ~2e-5 of the largest output (the transforms round
differently; a whole RetinaNet R50-FPN's features stay within 5e-6 relative). On small maps
and few channels oneDNN's direct kernels are as fast or faster and stay in use; so they do with
more threads, where NNPACK's own thread pool and OpenMP's take turns spinning on the same cores
(measured in benchmarks/RESULTS.md), and under autograd, tracing or export.

:func:`enable_winograd` marks the convolutions that may take this path (the inference fast
path marks all but those inside residual blocks, where the layout changes cost what the
kernel saves); :func:`winograd_applies` decides per call.
"""

from __future__ import annotations

import functools

import torch
from torch import Tensor, nn

from detbox.models.memory_layout import to_nchw
from detbox.models.onednn_training import onednn_usable
from detbox.models.onednn_weights import cached_weight

__all__ = ["MIN_CHANNELS", "MIN_PIXELS", "enable_winograd", "pointwise_conv_nchw",
           "reads_nchw_output", "winograd_applies", "winograd_conv"]

# Measured on one thread (benchmarks/RESULTS.md): below these the direct kernel is as fast.
MIN_CHANNELS = 128
MIN_PIXELS = 2000


@functools.cache
def _nnpack_ready() -> bool:
    """NNPACK is built into this PyTorch and initialised (the call initialises it)."""
    return bool(torch.backends.nnpack.is_available())


def winograd_applies(conv: nn.Module, x: Tensor) -> bool:
    """Whether ``conv`` (marked by :func:`enable_winograd`) runs Winograd on (B, C, H, W)
    ``x``: a plain 3x3 convolution (stride 1, padding 1, no dilation or groups), one torch
    thread, no autograd, float32 CPU tensors, at least ``MIN_CHANNELS`` input channels and
    ``MIN_PIXELS`` pixels per map, NNPACK available."""
    return (getattr(conv, "winograd", False) and torch.get_num_threads() == 1
            and not torch.is_grad_enabled() and x.dim() == 4
            and x.shape[1] >= MIN_CHANNELS and x.shape[-2] * x.shape[-1] >= MIN_PIXELS
            and conv.kernel_size == (3, 3) and conv.stride == (1, 1)
            and conv.dilation == (1, 1) and conv.groups == 1
            and tuple(conv.padding) == (1, 1) and conv.padding_mode == "zeros"
            and onednn_usable(conv.weight, x) and _nnpack_ready())


def winograd_conv(conv: nn.Conv2d, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    """``conv2d(x, weight, bias, padding=1)`` by Winograd: (B, C, H, W) -> (B, O, H, W), NCHW.

    ``weight`` (O, C, 3, 3) is used as an NCHW-contiguous copy kept per version of
    ``conv.weight`` (the fast path stores weights channels-last); a channels-last ``x`` is
    copied to NCHW by :func:`~detbox.models.memory_layout.to_nchw` (once per chain: the maps
    after it are NCHW already).
    """
    weight = cached_weight(conv, weight, "nchw", weight.contiguous)
    return torch._nnpack_spatial_convolution(to_nchw(x), weight.contiguous(), bias, [1, 1])


def reads_nchw_output(conv: nn.Module, x: Tensor) -> bool:
    """Whether ``conv`` (marked by :func:`enable_winograd`) is a 1x1 convolution reading an
    NCHW map, such as a Winograd convolution's output, in inference: it then runs as
    :func:`pointwise_conv_nchw` rather than have oneDNN convert the map to the weight's
    channels-last layout first (a full pass over it, the 1x1 convolution's whole cost again)."""
    return (getattr(conv, "winograd", False) and not torch.is_grad_enabled()
            and conv.kernel_size == (1, 1) and conv.stride == (1, 1) and conv.groups == 1
            and tuple(conv.padding) == (0, 0) and x.dim() == 4 and x.is_contiguous()
            and not x.is_contiguous(memory_format=torch.channels_last)
            and onednn_usable(conv.weight, x))


def pointwise_conv_nchw(x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    """A 1x1 convolution of the NCHW (B, C, H, W) ``x`` with the (O, C, 1, 1) ``weight`` as one
    batched GEMM (O, C) @ (C, H*W) per image: (B, O, H, W), NCHW."""
    b, c, h, w = x.shape
    mat = weight.reshape(1, -1, c).expand(b, -1, c)
    if bias is None:
        return torch.bmm(mat, x.view(b, c, h * w)).view(b, -1, h, w)
    return torch.baddbmm(bias.view(1, -1, 1), mat, x.view(b, c, h * w)).view(b, -1, h, w)


def enable_winograd(model: nn.Module, skip: tuple[type, ...] = ()) -> int:
    """Mark, in place, every ``Conv2d`` of ``model`` outside modules of the ``skip`` types as
    allowed to run :func:`winograd_conv` (each call still checks :func:`winograd_applies`).

    Returns:
        The number of convolutions marked.
    """
    skipped = {id(m) for parent in model.modules() if isinstance(parent, skip)
               for m in parent.modules()}
    marked = 0
    for module in model.modules():
        if isinstance(module, nn.Conv2d) and id(module) not in skipped:
            module.winograd = True
            marked += 1
    return marked
