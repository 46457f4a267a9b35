"""The inference fast path: a trained detector rewritten for prediction only.

At test time a batch-norm layer with fixed statistics is an affine map per channel, so it can be
folded into the convolution before it: ``bn(conv(x)) = conv'(x)`` with
``w' = w * g / sqrt(v + eps)`` and ``b' = (b - m) * g / sqrt(v + eps) + beta``. That removes one
full pass over every feature map of the backbone. Storing the convolution weights channels-last
lets oneDNN (CPU) and cuDNN (GPU) run their NHWC kernels, which are faster for these layers.
On CPU the ReLUs and residual sums are then fused into the convolutions
(:mod:`detbox.models.fused_conv`).

These rewrites change the numbers only by float rounding (features agree within about 1e-5
relative; on one thread the large 3x3 convolutions outside the backbone's residual blocks run
Winograd's algorithm, :mod:`detbox.models.winograd_conv`, which rounds differently but stays
within that); the folded model can no longer be trained (its BN layers are gone), so this is for
``init_detector``-style inference models only.
"""

from __future__ import annotations

import re

import torch
from torch import nn
from torchvision.ops import DeformConv2d
from torchvision.ops.misc import FrozenBatchNorm2d

from detbox.models.fused_conv import (
    FusedBasicBlock,
    FusedBottleneck,
    fuse_conv_relu_modules,
    route_to_onednn,
)
from detbox.models.layers.conv_ws import ConvWS2d, plain_conv_from_ws
from detbox.models.layers.norm import BATCH_NORMS
from detbox.models.winograd_conv import enable_winograd

__all__ = ["fold_batch_norms", "fold_conv_bn", "freeze_weight_standardization",
           "prepare_for_inference"]

_CONV_NAME = re.compile(r"^conv(\w*)$")
# Convolutions linear in their weight: a norm after them folds into weight and bias. A
# deformable conv is (its offsets depend on the input only), e.g. a DCN ResNet's ``conv2``.
_CONVS = (nn.Conv2d, DeformConv2d)


def _is_foldable_norm(module: nn.Module) -> bool:
    """FrozenBN always; BN/SyncBN only in eval mode with running statistics."""
    if isinstance(module, FrozenBatchNorm2d):
        return True
    return (isinstance(module, BATCH_NORMS) and not module.training
            and module.running_mean is not None and module.running_var is not None)


def _norm_affine(norm: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """The (C,) scale and shift of a BN layer with fixed statistics, in float64."""
    weight = norm.weight.detach().double() if norm.weight is not None else 1.0
    bias = norm.bias.detach().double() if norm.bias is not None else 0.0
    var, mean = norm.running_var.detach().double(), norm.running_mean.detach().double()
    scale = weight * torch.rsqrt(var + norm.eps)
    return scale, bias - mean * scale


@torch.no_grad()
def fold_conv_bn(conv: nn.Conv2d, norm: nn.Module) -> None:
    """Fold ``norm`` (applied right after ``conv``) into ``conv``'s weight and bias, in place.

    Args:
        conv: a Conv2d (or DeformConv2d) with C output channels (a bias is added if it has
            none).
        norm: a FrozenBatchNorm2d, or a BatchNorm2d/SyncBatchNorm in eval mode, over C channels.
    """
    if norm.running_mean.numel() != conv.out_channels:
        raise ValueError(f"cannot fold a {norm.running_mean.numel()}-channel norm into a conv "
                         f"with {conv.out_channels} output channels")
    scale, shift = _norm_affine(norm)
    weight = conv.weight.double() * scale.view(-1, 1, 1, 1)
    bias = conv.bias.double() * scale + shift if conv.bias is not None else shift
    conv.weight.copy_(weight.to(conv.weight.dtype))
    if conv.bias is None:
        conv.bias = nn.Parameter(bias.to(conv.weight), requires_grad=False)
    else:
        conv.bias.copy_(bias.to(conv.bias.dtype))


def _sequential_pairs(seq: nn.Sequential) -> list[tuple[str, str]]:
    """(conv name, norm name) of each Conv2d directly followed by a foldable norm."""
    names = list(seq._modules)
    return [
        (a, b) for a, b in zip(names, names[1:])
        if isinstance(seq._modules[a], nn.Conv2d) and _is_foldable_norm(seq._modules[b])
    ]


def _named_pairs(module: nn.Module) -> list[tuple[str, str]]:
    """``convX`` / ``bnX`` children, the naming of torchvision's ResNet stem and blocks, whose
    forward applies ``bnX`` right after ``convX``."""
    pairs = []
    for name, child in module._modules.items():
        match = _CONV_NAME.match(name)
        norm = module._modules.get(f"bn{match.group(1)}") if match else None
        if isinstance(child, _CONVS) and norm is not None and _is_foldable_norm(norm):
            pairs.append((name, f"bn{match.group(1)}"))
    return pairs


def freeze_weight_standardization(model: nn.Module) -> int:
    """Replace every weight-standardized conv by a plain conv holding its standardized weight,
    in place (same output): the rewrites below read and write ``weight`` as the kernel.

    Returns:
        The number of convs replaced.
    """
    replaced = 0
    for module in list(model.modules()):
        for name, child in list(module._modules.items()):
            if isinstance(child, ConvWS2d):
                module._modules[name] = plain_conv_from_ws(child)
                replaced += 1
    return replaced


def fold_batch_norms(model: nn.Module) -> int:
    """Fold every batch norm that directly follows a convolution into it, in place.

    Two layouts are recognised: a ``Sequential`` with a Conv2d followed by the norm (ResNet's
    ``downsample``, torchvision's ``Conv2dNormActivation``), and sibling children ``convX`` /
    ``bnX`` (ResNet's stem, ``BasicBlock``, ``Bottleneck``; ``convX`` may be deformable).
    Weight-standardized convs become plain convs first (:func:`freeze_weight_standardization`).
    Each folded norm is replaced by an ``nn.Identity``. Norms in training mode, GroupNorm and
    norms not after a conv are left alone.

    Args:
        model: any module; typically a detector in eval mode.

    Returns:
        The number of norms folded.
    """
    freeze_weight_standardization(model)  # standardize first, then fold
    folded = 0
    for module in list(model.modules()):
        pairs = (_sequential_pairs(module) if isinstance(module, nn.Sequential)
                 else _named_pairs(module))
        for conv_name, norm_name in pairs:
            fold_conv_bn(module._modules[conv_name], module._modules[norm_name])
            module._modules[norm_name] = nn.Identity()
            folded += 1
    return folded


def prepare_for_inference(
    model: nn.Module, *, fuse_bn: bool = True, channels_last: bool = True,
    fuse_relu: bool = True, winograd: bool = True,
) -> nn.Module:
    """Put a detector into its inference fast path, in place, and return it.

    Args:
        model: a trained detector (any module); it is put into eval mode first.
        fuse_bn: fold batch norms into the preceding convolutions (see :func:`fold_batch_norms`).
        channels_last: store 4-D weights channels-last, so convolutions run NHWC kernels and
            produce channels-last feature maps (values unchanged; layout only).
        fuse_relu: run each conv with the ReLU (and residual sum) after it as one oneDNN kernel
            on CPU, and every other convolution and linear layer through oneDNN too (see
            :mod:`detbox.models.fused_conv`); needs ``fuse_bn`` for residual blocks.
        winograd: with ``fuse_relu``, let large 3x3 convolutions outside residual blocks run
            Winograd's algorithm when torch uses one thread (see
            :mod:`detbox.models.winograd_conv`; results within ~1e-5 relative).

    Returns:
        ``model``, in eval mode with its parameters frozen (``requires_grad=False``, which lets
        the CPU kernels keep their weights in their own layouts), for prediction only.
    """
    model.eval().requires_grad_(False)
    freeze_weight_standardization(model)
    if fuse_bn:
        fold_batch_norms(model)
    if fuse_relu:
        fuse_conv_relu_modules(model)
        route_to_onednn(model)
        if winograd:
            enable_winograd(model, skip=(FusedBottleneck, FusedBasicBlock))
    if channels_last:
        model.to(memory_format=torch.channels_last)
    return model
