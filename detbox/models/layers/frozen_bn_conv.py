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

__all__ = [
    "PLUGIN_POSITIONS", "PluggedBottleneck", "conv_frozen_bn", "folded_block_forward",
    "plug_after_conv3", "plug_into",
]


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


# Where a plug-in runs on a bottleneck's residual branch: after conv2, its norm and ReLU (the
# input of conv3), or after conv3 and its norm (before the sum with the shortcut).
PLUGIN_POSITIONS = ("after_conv2", "after_conv3")


class PluggedBottleneck(Bottleneck):
    """torchvision's ``Bottleneck`` whose residual branch also runs plug-ins: ``after_conv2``
    (e.g. generalized attention) and/or ``after_conv3`` (e.g. a GCNet context block), see
    :data:`PLUGIN_POSITIONS`. Its other children and their state-dict keys are the
    Bottleneck's; ``after_conv2.*`` / ``after_conv3.*`` are new."""

    def forward(self, x: Tensor) -> Tensor:
        return folded_block_forward(self, x)


def plug_into(block: Bottleneck, position: str, module: nn.Module) -> PluggedBottleneck:
    """Run ``module`` at ``position`` (one of :data:`PLUGIN_POSITIONS`) of ``block``, a plain
    torchvision ``Bottleneck`` or an already plugged one, in place (its weights and keys stay),
    and return it. One plug-in per position."""
    if position not in PLUGIN_POSITIONS:
        raise ValueError(f"plug-in position must be one of {PLUGIN_POSITIONS}, got {position!r}")
    if type(block) not in (Bottleneck, PluggedBottleneck):
        raise TypeError(f"only a torchvision Bottleneck takes a plug-in, not {type(block)}")
    if position in block._modules:
        raise ValueError(f"the block already has an {position} plug-in")
    block.__class__ = PluggedBottleneck
    block.add_module(position, module)
    return block


def plug_after_conv3(block: Bottleneck, module: nn.Module) -> PluggedBottleneck:
    """:func:`plug_into` at ``'after_conv3'``."""
    return plug_into(block, "after_conv3", module)


def _plugin(block: nn.Module, position: str, x: Tensor) -> Tensor:
    module = block._modules.get(position)
    return x if module is None else module(x)


def folded_block_forward(block: nn.Module, x: Tensor, input_owned: bool = False) -> Tensor:
    """A torchvision ``Bottleneck`` / ``BasicBlock`` (or a :class:`PluggedBottleneck`) with each
    (conv, frozen BN) pair run by :func:`conv_frozen_bn`; any other module (a fused inference
    block, a non-local block) is simply called. (B, C, H, W) -> the block's output.

    ``input_owned``: nothing but this block reads ``x`` (the previous block's output inside a
    stage), so a fused inference block may write its output over it.
    """
    if input_owned and getattr(block, "may_overwrite_input", False):
        return block(x, overwrite_input=True)
    if type(block) in (Bottleneck, PluggedBottleneck):
        out = F.relu(conv_frozen_bn(block.conv1, block.bn1, x), inplace=True)
        out = F.relu(conv_frozen_bn(block.conv2, block.bn2, out), inplace=True)
        if type(block) is PluggedBottleneck:
            out = _plugin(block, "after_conv2", out)
        out = conv_frozen_bn(block.conv3, block.bn3, out)
        if type(block) is PluggedBottleneck:
            out = _plugin(block, "after_conv3", out)
    elif type(block) is BasicBlock:
        out = F.relu(conv_frozen_bn(block.conv1, block.bn1, x), inplace=True)
        out = conv_frozen_bn(block.conv2, block.bn2, out)
    else:
        return block(x)
    return F.relu(out.add_(_shortcut(block, x)), inplace=True)
