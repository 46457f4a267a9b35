"""Normalization layers chosen by name, so configs can say ``norm='GN'``.

Detection fine-tunes from ImageNet with small per-GPU batches, where batch statistics are noisy;
hence the usual choices are frozen BN (statistics and affine fixed), synchronized BN, or GroupNorm.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from torch import nn
from torchvision.ops.misc import FrozenBatchNorm2d

from detbox.errors import ConfigError

__all__ = ["BATCH_NORMS", "NORM_CHOICES", "FrozenBatchNorm2d", "build_norm", "norm_factory"]

NORM_CHOICES = ("FrozenBN", "BN", "SyncBN", "GN")

# Layers that keep running statistics, i.e. the ones ``norm_eval`` puts into eval mode.
BATCH_NORMS = (nn.BatchNorm2d, nn.SyncBatchNorm)


def build_norm(norm: str, num_channels: int, *, num_groups: int = 32) -> nn.Module:
    """One normalization layer over ``num_channels`` channels of a (B, C, H, W) tensor.

    Args:
        norm: one of ``NORM_CHOICES``.
        num_channels: channels C of the input.
        num_groups: groups for ``'GN'`` (32 as in the GroupNorm paper); C must divide by it.

    Raises:
        ConfigError: for an unknown name or channels that do not split into the groups.
    """
    if norm == "FrozenBN":
        return FrozenBatchNorm2d(num_channels)
    if norm == "BN":
        return nn.BatchNorm2d(num_channels)
    if norm == "SyncBN":
        return nn.SyncBatchNorm(num_channels)
    if norm == "GN":
        if num_channels % num_groups:
            raise ConfigError(
                f"GroupNorm needs channels divisible by num_groups={num_groups}, "
                f"got {num_channels} channels"
            )
        return nn.GroupNorm(num_groups, num_channels)
    raise ConfigError(f"unknown norm '{norm}'; choose one of {', '.join(NORM_CHOICES)}")


def norm_factory(norm: str) -> Callable[[int], nn.Module]:
    """A ``num_channels -> layer`` callable, the form torchvision's ``norm_layer`` expects."""
    build_norm(norm, 32)  # fail early, at config time, on an unknown name
    return partial(build_norm, norm)
