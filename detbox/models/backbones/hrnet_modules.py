"""The parts of an HRNet stage: parallel branches, their fusion, and the transitions between stages.

An HRNet stage keeps ``n`` maps at strides 4, 8, ..., 4 * 2**(n-1) side by side. Each
:class:`HRModule` runs every branch through its own residual blocks, then *fuses* them: output
``i`` is the sum over all branches ``j`` of branch ``j`` brought to branch ``i``'s resolution and
channels (a 1x1 conv and nearest upsampling from a coarser branch, a chain of stride-2 3x3
convs from a finer one). Between stages a *transition* adapts the channels of the kept
branches and derives the new, coarser branch from the coarsest one.

The module and child names (``branches.i.k``, ``fuse_layers.i.j``, the ``transition``
``Sequential`` indices) are the official HRNet implementation's, so its ImageNet state dicts
load key for key; the blocks are torchvision's ``BasicBlock`` / ``Bottleneck``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.models.resnet import BasicBlock, Bottleneck

from detbox.models.layers.frozen_bn_conv import folded_block_forward

__all__ = ["HRModule", "make_branch", "make_transition", "run_transition"]

NormFactory = Callable[[int], nn.Module]


def _conv_norm(in_ch: int, out_ch: int, kernel: int, stride: int, norm: NormFactory,
               relu: bool) -> nn.Sequential:
    """``Sequential(conv, norm[, relu])``: a conv without bias, its norm, optionally a ReLU."""
    layers = [nn.Conv2d(in_ch, out_ch, kernel, stride=stride, padding=kernel // 2, bias=False),
              norm(out_ch)]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


def make_branch(block: type[BasicBlock] | type[Bottleneck], in_channels: int, channels: int,
                num_blocks: int, norm: NormFactory) -> nn.Sequential:
    """``num_blocks`` residual blocks of ``channels`` planes at one resolution (stride 1).

    The first block gets a 1x1 conv + norm shortcut (``0.downsample``) when its input does not
    have the ``channels * block.expansion`` channels of its output (HRNet's stage 1: 64 -> 256).
    """
    out_channels = channels * block.expansion
    downsample = None
    if in_channels != out_channels:
        downsample = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, bias=False),
                                   norm(out_channels))
    blocks = [block(in_channels, channels, downsample=downsample, norm_layer=norm)]
    blocks += [block(out_channels, channels, norm_layer=norm) for _ in range(1, num_blocks)]
    return nn.Sequential(*blocks)


def make_transition(previous: Sequence[int], current: Sequence[int], norm: NormFactory
                    ) -> nn.ModuleList:
    """The layers between a stage with branch channels ``previous`` and one with ``current``.

    Entry ``i`` is None when branch ``i`` passes unchanged, a 3x3 conv-norm-ReLU
    (``Sequential(conv, norm, relu)``) when only its channels change, and for a new branch
    ``Sequential(Sequential(conv, norm, relu), ...)`` of stride-2 3x3 convs from the coarsest
    previous branch (one per halving).
    """
    layers = nn.ModuleList()
    for i, channels in enumerate(current):
        if i < len(previous):
            same = previous[i] == channels
            layers.append(None if same else _conv_norm(previous[i], channels, 3, 1, norm, True))
            continue
        steps, in_ch = [], previous[-1]
        for step in range(i + 1 - len(previous)):
            out_ch = channels if step == i - len(previous) else in_ch
            steps.append(_conv_norm(in_ch, out_ch, 3, 2, norm, True))
            in_ch = out_ch
        layers.append(nn.Sequential(*steps))
    return layers


def run_transition(transition: nn.ModuleList, feats: Sequence[Tensor]) -> list[Tensor]:
    """Apply ``transition`` (from :func:`make_transition`) to the previous stage's maps."""
    outs = []
    for i, layer in enumerate(transition):
        x = feats[i] if i < len(feats) else feats[-1]
        outs.append(x if layer is None else layer(x))
    return outs


class HRModule(nn.Module):
    """One multi-resolution module: parallel residual branches, then full fusion.

    Args:
        channels: channels of each branch, finest first (``C, 2C, 4C, ...``).
        num_blocks: BasicBlocks per branch.
        norm: ``num_channels -> norm layer`` (see :func:`detbox.models.layers.norm_factory`).
    """

    def __init__(self, *, channels: Sequence[int], num_blocks: int, norm: NormFactory) -> None:
        super().__init__()
        self.channels = list(channels)
        self.branches = nn.ModuleList(
            make_branch(BasicBlock, c, c, num_blocks, norm) for c in channels)
        self.fuse_layers = nn.ModuleList(
            nn.ModuleList(self._fuse_layer(j, i, norm) for j in range(len(channels)))
            for i in range(len(channels)))
        self.relu = nn.ReLU(inplace=False)

    def _fuse_layer(self, source: int, target: int, norm: NormFactory) -> nn.Module | None:
        """What brings branch ``source`` to branch ``target``'s channels and resolution."""
        src, dst = self.channels[source], self.channels[target]
        if source == target:
            return None
        if source > target:  # coarser: 1x1 conv + norm here, upsampled in forward
            return _conv_norm(src, dst, 1, 1, norm, relu=False)
        steps = target - source
        return nn.Sequential(*(
            _conv_norm(src, dst if k == steps - 1 else src, 3, 2, norm, relu=k < steps - 1)
            for k in range(steps)))

    def forward(self, feats: Sequence[Tensor]) -> list[Tensor]:
        """Map one (B, C_i, H_i, W_i) tensor per branch to fused maps of the same shapes."""
        if len(feats) != len(self.branches):
            raise ValueError(f"HRModule expects {len(self.branches)} maps, got {len(feats)}")
        xs = []
        for branch, x in zip(self.branches, feats):
            for block in branch:
                x = folded_block_forward(block, x)
            xs.append(x)
        outs = []
        for i, layers in enumerate(self.fuse_layers):
            y = xs[i]
            for j, layer in enumerate(layers):
                if j == i:
                    continue
                z = layer(xs[j])
                if j > i:  # nearest upsampling to the exact size (odd sizes round up)
                    z = F.interpolate(z, size=xs[i].shape[-2:], mode="nearest")
                y = y + z
            outs.append(self.relu(y))
        return outs
