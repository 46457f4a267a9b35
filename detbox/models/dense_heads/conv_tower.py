"""The conv towers of dense heads and their initialisation (RetinaNet, FCOS, ATSS, GFL, ...)."""

from __future__ import annotations

import math

from torch import Tensor, nn

from detbox.models.layers.norm import build_norm

__all__ = ["LevelNormTower", "cls_reg_towers", "conv_tower", "init_dense_head"]


def conv_tower(
    in_channels: int, feat_channels: int, num_convs: int, norm: str | None,
    bias: bool | None = None,
) -> nn.Sequential:
    """``num_convs`` x (3x3 conv, optional norm, ReLU), shared over levels.

    Args:
        in_channels: channels of the input maps; feat_channels: channels inside the tower.
        num_convs: convs in the tower (0: an empty tower, the identity).
        norm: ``None`` or a ``build_norm`` name (e.g. ``'GN'``) after each conv.
        bias: conv bias; None means "only without a norm" (a norm's shift makes it redundant;
            torchvision's FCOS keeps it, hence the option).

    Layers are indexed conv, norm, ReLU per step (conv, ReLU without a norm).
    """
    if bias is None:
        bias = norm is None
    layers: list[nn.Module] = []
    for i in range(num_convs):
        layers.append(nn.Conv2d(in_channels if i == 0 else feat_channels, feat_channels, 3,
                                padding=1, bias=bias))
        if norm is not None:
            layers.append(build_norm(norm, feat_channels))
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


def cls_reg_towers(
    in_channels: int, feat_channels: int, num_convs: int, norm: str | None,
    bias: bool | None = None,
) -> tuple[nn.Sequential, nn.Sequential, int]:
    """A dense head's classification and regression towers (two :func:`conv_tower` of the same
    shape, separate weights) and the channels they output: ``feat_channels``, or
    ``in_channels`` when ``num_convs`` is 0 (the towers are then the identity)."""
    towers = [conv_tower(in_channels, feat_channels, num_convs, norm, bias) for _ in range(2)]
    return towers[0], towers[1], feat_channels if num_convs > 0 else in_channels


class LevelNormTower(nn.Module):
    """``num_convs`` x (3x3 conv, norm, ReLU) whose convs are shared over the pyramid levels
    while each level has norms of its own (NAS-FPN's RetinaNet head): batch statistics differ
    from level to level, one set of filters does not.

    Args:
        in_channels, feat_channels: channels of the input maps and inside the tower.
        num_convs: convs in the tower (at least 1).
        norm: a ``build_norm`` name (``'BN'`` in the paper); the convs then have no bias.
        num_levels: pyramid levels the tower is applied to.
    """

    def __init__(self, in_channels: int, feat_channels: int, num_convs: int, norm: str,
                 num_levels: int) -> None:
        super().__init__()
        self.convs = nn.ModuleList(
            nn.Conv2d(in_channels if i == 0 else feat_channels, feat_channels, 3, padding=1,
                      bias=False)
            for i in range(num_convs))
        self.norms = nn.ModuleList(
            nn.ModuleList(build_norm(norm, feat_channels) for _ in range(num_convs))
            for _ in range(num_levels))

    def forward(self, x: Tensor, level: int) -> Tensor:
        """(B, in_channels, H, W) map of pyramid level ``level`` -> (B, feat_channels, H, W)."""
        for conv, norm in zip(self.convs, self.norms[level]):
            x = norm(conv(x)).relu_()
        return x


def init_dense_head(head: nn.Module, cls_conv: nn.Conv2d, prior_prob: float) -> None:
    """Every conv of ``head`` ~ N(0, 0.01) with zero bias; ``cls_conv``'s bias starts every
    class at probability ``prior_prob``, so early training is not swamped by the loss of ~100k
    easy negatives (RetinaNet's initialisation)."""
    for module in head.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.normal_(module.weight, std=0.01)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
    nn.init.constant_(cls_conv.bias, -math.log((1 - prior_prob) / prior_prob))
