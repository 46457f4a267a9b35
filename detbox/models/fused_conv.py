"""Convolutions fused with the ReLU (and residual sum) after them, for CPU inference.

On CPU every ReLU and residual sum is one more pass over a full feature map. oneDNN can apply
them while the convolution writes its output (``torch.ops.mkldnn._convolution_pointwise``,
the kernel ``torch.compile`` uses for the same fusion), which gives bit-identical results
without those passes. Everywhere else (GPU, autograd, other dtypes) the modules run the plain
``relu(conv(x) [+ other])``.

These modules are built by :mod:`detbox.models.inference_mode` after batch norms are folded;
they are not meant for training.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F
from torchvision.models.resnet import BasicBlock, Bottleneck

__all__ = ["FusedBasicBlock", "FusedBottleneck", "FusedConvReLU", "fuse_conv_relu_modules"]


def _mkldnn_ok(conv: nn.Conv2d, x: Tensor) -> bool:
    """Whether oneDNN's fused kernel applies: a plain conv (not a deformable one), CPU
    float32, no autograd, zero padding."""
    return (isinstance(conv, nn.Conv2d) and x.device.type == "cpu"
            and x.dtype == torch.float32 and x.layout == torch.strided
            and conv.weight.dtype == torch.float32 and conv.padding_mode == "zeros"
            and not isinstance(conv.padding, str) and torch.backends.mkldnn.is_available()
            and not (torch.is_grad_enabled() and conv.weight.requires_grad))


def _geometry(conv: nn.Conv2d) -> tuple[list[int], list[int], list[int], int]:
    return list(conv.padding), list(conv.stride), list(conv.dilation), conv.groups


def conv_relu(conv: nn.Conv2d, x: Tensor) -> Tensor:
    """``relu(conv(x))`` for (B, C, H, W) ``x``, one oneDNN kernel on CPU."""
    if not _mkldnn_ok(conv, x):
        return F.relu(conv(x))
    return torch.ops.mkldnn._convolution_pointwise(x, conv.weight, conv.bias, *_geometry(conv),
                                                   "relu", [None], "")


def conv_add_relu(conv: nn.Conv2d, x: Tensor, other: Tensor) -> Tensor:
    """``relu(conv(x) + other)`` (a residual block's end), one oneDNN kernel on CPU.

    ``other`` must have the shape of ``conv(x)``: (B, C_out, H', W').
    """
    if not _mkldnn_ok(conv, x) or other.dtype != torch.float32:
        return F.relu(conv(x) + other)
    return torch.ops.mkldnn._convolution_pointwise.binary(
        x, other, conv.weight, conv.bias, *_geometry(conv), "add", None, "relu", [None], "")


class FusedConvReLU(nn.Module):
    """``relu(conv(x))`` as one module (the conv keeps its parameters)."""

    def __init__(self, conv: nn.Conv2d) -> None:
        super().__init__()
        self.conv = conv

    def forward(self, x: Tensor) -> Tensor:
        return conv_relu(self.conv, x)


class FusedBottleneck(nn.Module):
    """torchvision's ``Bottleneck`` with its norms already folded, ReLUs and sum fused."""

    def __init__(self, block: Bottleneck) -> None:
        super().__init__()
        self.conv1, self.conv2, self.conv3 = block.conv1, block.conv2, block.conv3
        self.downsample = block.downsample

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = conv_relu(self.conv2, conv_relu(self.conv1, x))
        return conv_add_relu(self.conv3, out, identity)


class FusedBasicBlock(nn.Module):
    """torchvision's ``BasicBlock`` with its norms already folded, ReLU and sum fused."""

    def __init__(self, block: BasicBlock) -> None:
        super().__init__()
        self.conv1, self.conv2 = block.conv1, block.conv2
        self.downsample = block.downsample

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        return conv_add_relu(self.conv2, conv_relu(self.conv1, x), identity)


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
