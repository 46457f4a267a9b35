"""oneDNN kernels for CPU inference: convolutions fused with the ReLU (and residual sum)
after them, and the remaining convolutions and linear layers routed to oneDNN.

On CPU every ReLU and residual sum is one more pass over a full feature map. oneDNN can apply
them while the convolution writes its output (``torch.ops.mkldnn._convolution_pointwise``,
the kernel ``torch.compile`` uses for the same fusion), which gives bit-identical results
without those passes. Everywhere else (GPU, autograd, other dtypes) the modules run the plain
``relu(conv(x) [+ other])``.

PyTorch sends an unstrided 1x1 convolution with one thread and a batch under 16 (an FPN
lateral, an RPN output layer) and every ``nn.Linear`` (the box head's fc6/fc7) to its BLAS GEMM,
which on some CPUs (e.g. AMD EPYC with MKL) runs at half of oneDNN's speed;
:class:`OneDNNConv2d` and :class:`OneDNNLinear` call oneDNN directly (same results up to float
rounding), in training too (the 1x1 convolutions and linear layers through the differentiable
GEMMs of :mod:`detbox.models.onednn_training`).

:mod:`detbox.models.inference_mode` builds the fused modules after batch norms are folded (they
are inference-only); :func:`route_to_onednn` also serves training; :func:`conv_add` and
:func:`conv_transpose_relu` serve the plain FPN and mask head, and run the plain ops under
autograd, export and compilation.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F
from torchvision.models.resnet import BasicBlock, Bottleneck

from detbox.models.onednn_training import onednn_conv1x1, onednn_linear, onednn_usable
from detbox.models.onednn_weights import packed_conv_weight, packed_linear_weight
from detbox.models.winograd_conv import (
    pointwise_conv_nchw,
    reads_nchw_output,
    winograd_applies,
    winograd_conv,
)

__all__ = ["FusedBasicBlock", "FusedBottleneck", "FusedConvReLU", "OneDNNConv2d", "OneDNNLinear",
           "conv_add", "conv_transpose_relu", "fuse_conv_relu_modules", "route_to_onednn"]


def _onednn_applies(weight: Tensor, x: Tensor) -> bool:
    """Whether a oneDNN inference kernel may replace the layer: :func:`onednn_usable` and no
    autograd through the weight."""
    return onednn_usable(weight, x) and not (torch.is_grad_enabled() and weight.requires_grad)


def _trains_on_onednn(weight: Tensor, x: Tensor) -> bool:
    """Whether the layer is being trained (autograd through the weight) where oneDNN's
    differentiable GEMMs (:mod:`detbox.models.onednn_training`) apply."""
    return torch.is_grad_enabled() and weight.requires_grad and onednn_usable(weight, x)


def _onednn_geometry(conv: nn.Module) -> bool:
    """A plain (transposed) conv, not a deformable one, with zero padding given as numbers:
    what oneDNN's convolution kernels take."""
    return (isinstance(conv, (nn.Conv2d, nn.ConvTranspose2d)) and conv.padding_mode == "zeros"
            and not isinstance(conv.padding, str))


def _mkldnn_ok(conv: nn.Conv2d | nn.ConvTranspose2d, x: Tensor) -> bool:
    """Whether oneDNN's fused kernel applies: :func:`_onednn_geometry` and
    :func:`_onednn_applies`."""
    return _onednn_geometry(conv) and _onednn_applies(conv.weight, x)


def _geometry(conv: nn.Conv2d) -> tuple[list[int], list[int], list[int], int]:
    return list(conv.padding), list(conv.stride), list(conv.dilation), conv.groups


def conv_relu(conv: nn.Conv2d, x: Tensor) -> Tensor:
    """``relu(conv(x))`` for (B, C, H, W) ``x``, one oneDNN kernel on CPU (or Winograd and an
    in-place ReLU where :func:`winograd_applies`)."""
    if winograd_applies(conv, x):
        return winograd_conv(conv, x, conv.weight, conv.bias).relu_()
    if not _mkldnn_ok(conv, x):
        return F.relu(conv(x))
    return torch.ops.mkldnn._convolution_pointwise(
        x, packed_conv_weight(conv, conv.weight, x), conv.bias, *_geometry(conv), "relu", [None],
        "")


def conv_add_relu(conv: nn.Conv2d, x: Tensor, other: Tensor, *, into_other: bool = False
                  ) -> Tensor:
    """``relu(conv(x) + other)`` (a residual block's end), one oneDNN kernel on CPU.

    ``other`` must have the shape of ``conv(x)``: (B, C_out, H', W'). With ``into_other`` the
    kernel writes the result over ``other`` (which the caller no longer needs) instead of a new
    tensor: no fresh memory for a map that is often tens of MB, whose pages the allocator would
    hand back and the kernel zero again on the next pass.
    """
    if not _mkldnn_ok(conv, x) or other.dtype != torch.float32:
        return F.relu(conv(x) + other)
    return _onednn_conv_plus(conv, x, other, ("relu", [None], ""), into_other)


def _onednn_conv_plus(conv: nn.Module, x: Tensor, other: Tensor, unary: tuple,
                      into_other: bool) -> Tensor:
    """oneDNN's ``conv(x) + other`` followed by ``unary`` (the kernel's ``(unary_attr,
    unary_scalars, unary_algorithm)``), written over ``other`` when ``into_other`` and it can
    be (no autograd through it, the layout of ``x``), else into a new tensor."""
    weight = packed_conv_weight(conv, conv.weight, x)
    if into_other and not other.requires_grad and _same_dense_layout(other, x):
        return torch.ops.mkldnn._convolution_pointwise_.binary(
            other, x, weight, conv.bias, *_geometry(conv), "add", None, *unary)
    return torch.ops.mkldnn._convolution_pointwise.binary(
        x, other, weight, conv.bias, *_geometry(conv), "add", None, *unary)


def _separate(shortcut: Tensor, x: Tensor) -> bool:
    """The shortcut is a tensor of its own (a downsampling branch's output), not ``x`` or a
    view of it, so a block may write its output over it."""
    return shortcut.untyped_storage().data_ptr() != x.untyped_storage().data_ptr()


def _same_dense_layout(a: Tensor, b: Tensor) -> bool:
    """Both contiguous in the same memory format (channels-last or NCHW)."""
    last = torch.channels_last
    return ((a.is_contiguous(memory_format=last) and b.is_contiguous(memory_format=last))
            or (a.is_contiguous() and b.is_contiguous()))


def conv_add(conv: nn.Module, x: Tensor, other: Tensor, *, into_other: bool = False) -> Tensor:
    """``conv(x) + other`` (an FPN lateral plus the upsampled coarser level), one oneDNN
    kernel on CPU when ``conv`` is a plain convolution; ``other`` has the shape of ``conv(x)``.
    ``into_other``: write the sum over ``other`` (see :func:`conv_add_relu`)."""
    if (type(conv) not in (nn.Conv2d, OneDNNConv2d) or not _mkldnn_ok(conv, x)
            or other.dtype != torch.float32):
        return conv(x) + other
    return _onednn_conv_plus(conv, x, other, (None, [], None), into_other)


def conv_transpose_relu(deconv: nn.ConvTranspose2d, x: Tensor) -> Tensor:
    """``relu(deconv(x))`` (a mask head's upsampling), one oneDNN kernel at CPU inference."""
    if type(deconv) is not nn.ConvTranspose2d or not _mkldnn_ok(deconv, x):
        return F.relu(deconv(x))
    return torch.ops.mkldnn._convolution_transpose_pointwise(
        x, deconv.weight, deconv.bias, list(deconv.padding), list(deconv.output_padding),
        list(deconv.stride), list(deconv.dilation), deconv.groups, "relu", [None], "")


class FusedConvReLU(nn.Module):
    """``relu(conv(x))`` as one module (the conv keeps its parameters)."""

    def __init__(self, conv: nn.Conv2d) -> None:
        super().__init__()
        self.conv = conv

    def forward(self, x: Tensor) -> Tensor:
        return conv_relu(self.conv, x)


class FusedBottleneck(nn.Module):
    """torchvision's ``Bottleneck`` with its norms already folded, ReLUs and sum fused.

    The block's output is written over its shortcut when that is a fresh tensor: the
    downsampling branch's output, or, with ``overwrite_input=True``, the input ``x`` itself
    (a backbone passes it for a block whose input only that block reads).
    """

    may_overwrite_input = True

    def __init__(self, block: Bottleneck) -> None:
        super().__init__()
        self.conv1, self.conv2, self.conv3 = block.conv1, block.conv2, block.conv3
        self.downsample = block.downsample

    def forward(self, x: Tensor, overwrite_input: bool = False) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = conv_relu(self.conv2, conv_relu(self.conv1, x))
        return conv_add_relu(self.conv3, out, identity,
                             into_other=overwrite_input or _separate(identity, x))


class FusedBasicBlock(nn.Module):
    """torchvision's ``BasicBlock`` with its norms already folded, ReLU and sum fused; the
    output goes over the shortcut as in :class:`FusedBottleneck`."""

    may_overwrite_input = True

    def __init__(self, block: BasicBlock) -> None:
        super().__init__()
        self.conv1, self.conv2 = block.conv1, block.conv2
        self.downsample = block.downsample

    def forward(self, x: Tensor, overwrite_input: bool = False) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        return conv_add_relu(self.conv2, conv_relu(self.conv1, x), identity,
                             into_other=overwrite_input or _separate(identity, x))


def _block_folded(block: nn.Module) -> bool:
    norms = [m for name, m in block.named_children() if name.startswith("bn")]
    return all(isinstance(m, nn.Identity) for m in norms)


def _fuse_child(child: nn.Module) -> nn.Module | None:
    if type(child) is Bottleneck and _block_folded(child):
        return FusedBottleneck(child)
    if type(child) is BasicBlock and _block_folded(child):
        return FusedBasicBlock(child)
    return None


def fuse_conv_relu_modules(model: nn.Module) -> int:
    """Replace, in place, residual blocks whose norms are folded and ``Sequential`` runs of
    ``Conv2d, ReLU`` by their fused forms.

    Returns:
        The number of modules replaced.
    """
    fused = 0
    for module in list(model.modules()):
        for name, child in list(module._modules.items()):
            replacement = _fuse_child(child) if child is not None else None
            if replacement is not None:
                module._modules[name] = replacement
                fused += 1
        if isinstance(module, nn.Sequential):
            names = list(module._modules)
            for a, b in zip(names, names[1:]):
                first, second = module._modules[a], module._modules[b]
                if type(first) is nn.Conv2d and type(second) is nn.ReLU:
                    module._modules[a], module._modules[b] = FusedConvReLU(first), nn.Identity()
                    fused += 1
    return fused


class OneDNNConv2d(nn.Conv2d):
    """A plain ``nn.Conv2d`` whose CPU float32 convolutions run oneDNN's kernels (see the module
    docstring): always in inference, and in training for the 1x1 convolutions PyTorch would
    give its BLAS GEMM. Parameters, attributes and state-dict names are the ``Conv2d``'s; the
    routing sits in ``_conv_forward``, so callers that pass their own weight (a frozen BN
    folded into it) are routed too."""

    def _conv_forward(self, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        if self._is_pointwise() and _blas_would_run(x) and _trains_on_onednn(weight, x):
            return onednn_conv1x1(x, weight, bias)
        if winograd_applies(self, x):
            return winograd_conv(self, x, weight, bias)
        if reads_nchw_output(self, x):
            return pointwise_conv_nchw(x, weight, bias)
        if _onednn_geometry(self) and _onednn_applies(weight, x):
            return torch.ops.mkldnn._convolution_pointwise(
                x, packed_conv_weight(self, weight, x), bias, *_geometry(self), "none", [None],
                "")
        return super()._conv_forward(x, weight, bias)

    def _is_pointwise(self) -> bool:
        """An unstrided, unpadded, ungrouped 1x1 convolution (a GEMM over the pixels)."""
        return (self.kernel_size == (1, 1) and self.stride == (1, 1) and self.groups == 1
                and self.padding in ((0, 0), "valid") and self.padding_mode == "zeros")


def _blas_would_run(x: Tensor) -> bool:
    """PyTorch's own choice for an unstrided 1x1 convolution: its BLAS GEMM with one thread and
    a batch under 16, oneDNN otherwise (which is then as fast as calling it here)."""
    return torch.get_num_threads() == 1 and x.shape[0] < 16


class OneDNNLinear(nn.Linear):
    """An ``nn.Linear`` whose CPU float32 inference runs oneDNN's GEMM, with the ReLU after it
    fused when ``post_op == "relu"``. Input (..., in_features), output (..., out_features)."""

    post_op: str = "none"

    def forward(self, x: Tensor) -> Tensor:
        if _onednn_applies(self.weight, x):  # inference: the ReLU fused into the GEMM
            return torch.ops.mkldnn._linear_pointwise(
                x, packed_linear_weight(self, x), self.bias, self.post_op, [], "")
        if _trains_on_onednn(self.weight, x):
            out = onednn_linear(x, self.weight, self.bias)
        else:
            out = super().forward(x)
        return F.relu(out) if self.post_op == "relu" else out


def route_to_onednn(model: nn.Module) -> int:
    """Turn, in place, every plain ``Conv2d`` into an :class:`OneDNNConv2d` and every plain
    ``Linear`` into an :class:`OneDNNLinear`, fusing a ``Linear, ReLU`` run of a ``Sequential``
    (the ReLU becomes an ``Identity``). Only the forward changes: parameters stay where they are.

    Returns:
        The number of layers routed.
    """
    routed = 0
    for module in list(model.modules()):
        if type(module) is nn.Conv2d and module.padding_mode == "zeros":
            module.__class__ = OneDNNConv2d
            routed += 1
        elif type(module) is nn.Linear:
            module.__class__ = OneDNNLinear
            routed += 1
    for module in list(model.modules()):
        if isinstance(module, nn.Sequential):
            names = list(module._modules)
            for a, b in zip(names, names[1:]):
                first, second = module._modules[a], module._modules[b]
                if type(first) is OneDNNLinear and type(second) is nn.ReLU:
                    first.post_op = "relu"
                    module._modules[b] = nn.Identity()
    return routed
