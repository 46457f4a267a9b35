"""Weights kept in oneDNN's own blocked layout for CPU inference, packed once per layer.

Given a plain (O, I, kH, kW) or (O, I) weight, oneDNN's convolution and GEMM kernels first
reorder it into their blocked layout, on every call. For a layer with a large weight and a
small feature map (ResNet's last stage, a dense head's coarse levels, the box head's 12544 x
1024 fc6) that copy costs up to half of the layer's time. :func:`packed_conv_weight` and
:func:`packed_linear_weight` return the weight already in that layout (the tensors
``torch.compile`` builds for the same kernels when it freezes a model), made once and reused
while the parameter is unchanged; the results are bit-identical to the plain weight's.

The copies (these and :mod:`detbox.models.winograd_conv`'s NCHW ones) live in the side table
of :func:`~detbox.models.memory_layout.cached_copy`, not on the module: an opaque oneDNN tensor
can be neither pickled nor deep-copied, and it must never reach a state dict. An in-place
change of the parameter (``load_state_dict``) bumps its version and the copy is made again;
a weight that is not the layer's own frozen parameter (a norm folded into it on the fly, a
parameter still being trained) is used as it is. The price is a second copy of the weights in
memory (the model's size again).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from detbox.models.memory_layout import cached_copy

__all__ = ["cached_weight", "packed_conv_weight", "packed_linear_weight"]

def cached_weight(layer: nn.Module, weight: Tensor, kind: str,
                  make: Callable[[], Tensor]) -> Tensor:
    """``make()``, a copy of ``layer.weight`` in another layout (``kind`` names it), made once
    per version of the parameter (:func:`~detbox.models.memory_layout.cached_copy`); ``weight``
    itself when it is not the layer's parameter, is still being trained (``requires_grad``: the
    evaluations of a training run would keep a stale copy each) or its changes cannot be
    tracked."""
    if weight is not layer.weight or weight.requires_grad:
        return weight
    copy = cached_copy(weight, kind, make)
    return weight if copy is None else copy


def packed_conv_weight(conv: nn.Conv2d, weight: Tensor, x: Tensor) -> Tensor:
    """The weight to give ``torch.ops.mkldnn._convolution_pointwise`` for (B, C, H, W) ``x``.

    Packed only for a channels-last ``x``: oneDNN then runs the same kernel as with the plain
    weight (bit-identical results, channels-last output). For an NCHW input a packed weight
    would change the kernel and the output's layout, so the plain weight is returned.
    """
    if (x.dim() != 4 or x.numel() == 0
            or not x.is_contiguous(memory_format=torch.channels_last)):
        return weight
    geometry = (list(conv.padding), list(conv.stride), list(conv.dilation), conv.groups)
    return cached_weight(conv, weight, "onednn", lambda: (
        torch.ops.mkldnn._reorder_convolution_weight(weight, *geometry, list(x.shape))))


def packed_linear_weight(linear: nn.Linear, x: Tensor) -> Tensor:
    """The weight to give ``torch.ops.mkldnn._linear_pointwise`` for (N, in_features) ``x``
    (any N: the packed layout does not depend on it); the plain weight for other ranks."""
    if x.dim() != 2 or x.shape[0] == 0:
        return linear.weight
    return cached_weight(linear, linear.weight, "onednn", lambda: (
        torch.ops.mkldnn._reorder_linear_weight(linear.weight, x.shape[0])))
