"""A convolution followed by a frozen batch norm, run as one convolution while training.

Frozen BN is a fixed per-channel affine map, ``y = x * scale + shift``. Applied after a
convolution it costs two extra passes over a full feature map forward (a multiply, an add) and
one backward, on every one of a ResNet's 53 norms. Scaling the conv's *weight* instead,
``conv(x, w * scale) + shift``, gives the same function (up to float rounding) with one pass
fewer each way, and autograd still trains ``w`` through the product. The modules and their
state-dict keys stay torchvision's; only the forward changes. Norms that are not frozen (BN in
training mode, GroupNorm, an ``nn.Identity`` left by inference folding) run as usual.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.models.resnet import BasicBlock, Bottleneck
from torchvision.ops.misc import FrozenBatchNorm2d

from detbox.models.layers.conv_ws import ConvWS2d

__all__ = ["PluggedBottleneck", "conv_frozen_bn", "folded_block_forward", "plug_after_conv3"]


def conv_frozen_bn(conv: nn.Conv2d, norm: nn.Module, x: Tensor) -> Tensor:
    """``norm(conv(x))`` for (B, C_in, H, W) ``x``, as one convolution when ``norm`` is a
    ``FrozenBatchNorm2d`` over ``conv``'s output channels. ``conv`` is an ``nn.Conv2d`` or a
    module with its ``_conv_forward(x, weight, bias)`` (the deformable convs of
    :mod:`detbox.models.layers.deform_conv`); a weight-standardized conv is standardized
    first, then scaled."""
    if not isinstance(norm, FrozenBatchNorm2d):
        return norm(conv(x))
    scale = norm.weight * (norm.running_var + norm.eps).rsqrt()
    shift = norm.bias - norm.running_mean * scale
    kernel = conv.standardized_weight() if isinstance(conv, ConvWS2d) else conv.weight
    weight = kernel * scale.reshape(-1, 1, 1, 1).to(conv.weight.dtype)
    bias = shift if conv.bias is None else conv.bias * scale + shift
    return conv._conv_forward(x, weight, bias.to(conv.weight.dtype))


def _shortcut(block: nn.Module, x: Tensor) -> Tensor:
    down = block.downsample
    if down is None:
        return x
    if isinstance(down, nn.Sequential) and len(down) == 2 and isinstance(down[0], nn.Conv2d):
        return conv_frozen_bn(down[0], down[1], x)
    return down(x)


class PluggedBottleneck(Bottleneck):
    """torchvision's ``Bottleneck`` whose residual branch also runs ``after_conv3`` (e.g. a
    GCNet context block) after conv3 and its norm, before the sum. Its other children and
    their state-dict keys are the Bottleneck's; ``after_conv3.*`` are new."""

    after_conv3: nn.Module

    def forward(self, x: Tensor) -> Tensor:
        return folded_block_forward(self, x)


def plug_after_conv3(block: Bottleneck, module: nn.Module) -> PluggedBottleneck:
    """Turn ``block`` (a plain torchvision ``Bottleneck``) into a :class:`PluggedBottleneck`
    running ``module`` after conv3, in place (its weights and keys stay), and return it."""
    if type(block) is not Bottleneck:
        raise TypeError(f"only a plain torchvision Bottleneck takes a plug-in, not {type(block)}")
    block.__class__ = PluggedBottleneck
    block.after_conv3 = module
    return block


def folded_block_forward(block: nn.Module, x: Tensor) -> Tensor:
    """A torchvision ``Bottleneck`` / ``BasicBlock`` (or a :class:`PluggedBottleneck`) with each
    (conv, frozen BN) pair run by :func:`conv_frozen_bn`; any other module (a fused inference
    block, a non-local block) is simply called. (B, C, H, W) -> the block's output."""
    if type(block) in (Bottleneck, PluggedBottleneck):
        out = F.relu(conv_frozen_bn(block.conv1, block.bn1, x), inplace=True)
        out = F.relu(conv_frozen_bn(block.conv2, block.bn2, out), inplace=True)
        out = conv_frozen_bn(block.conv3, block.bn3, out)
        if type(block) is PluggedBottleneck:
            out = block.after_conv3(out)
    elif type(block) is BasicBlock:
        out = F.relu(conv_frozen_bn(block.conv1, block.bn1, x), inplace=True)
        out = conv_frozen_bn(block.conv2, block.bn2, out)
    else:
        return block(x)
    return F.relu(out.add_(_shortcut(block, x)), inplace=True)
