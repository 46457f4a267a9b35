"""MobileNetV3-Large for SSDlite (Howard et al., 2019): C4 expansion, C5 and four extra levels."""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import partial
from typing import Annotated

from torch import Tensor, nn
from torchvision.models import mobilenet_v3_large
from torchvision.ops.misc import Conv2dNormActivation

from detbox.errors import CheckpointError, ConfigError
from detbox.models.backbones.resnet import read_torchvision_state_dict
from detbox.models.pretrained import torchvision_name
from detbox.registry import MODELS
from detbox.typecheck import Positive

__all__ = ["SSDMobileNetV3"]

# Extra levels' output widths (before width_mult), each halving the map.
EXTRA_CHANNELS = (512, 256, 256, 128)


def _norm(channels: int) -> nn.BatchNorm2d:
    # The MobileNetV3 paper's (and torchvision's SSDlite) BN settings.
    return nn.BatchNorm2d(channels, eps=0.001, momentum=0.03)


def _split_at_c4(features: nn.Sequential) -> nn.Sequential:
    """MobileNetV3's layers as two stages: up to the first 1x1 expansion of the last
    stride-16 -> 32 block (its output is the C4 map, 672 channels), and the rest (C5)."""
    c4_pos = [i for i, block in enumerate(features) if getattr(block, "_is_cn", False)][-1]
    return nn.Sequential(
        nn.Sequential(*features[:c4_pos], features[c4_pos].block[0]),
        nn.Sequential(features[c4_pos].block[1:], *features[c4_pos + 1:]),
    )


def _extra_block(in_channels: int, out_channels: int) -> nn.Sequential:
    """1x1 conv to half the width, 3x3 depthwise stride 2, 1x1 conv; BN + ReLU6 after each."""
    mid = out_channels // 2
    block = partial(Conv2dNormActivation, norm_layer=_norm, activation_layer=nn.ReLU6)
    return nn.Sequential(
        block(in_channels, mid, kernel_size=1),
        block(mid, mid, kernel_size=3, stride=2, groups=mid),
        block(mid, out_channels, kernel_size=1),
    )


def _mobilenet_features(width_mult: float, reduced_tail: bool) -> nn.Sequential:
    return mobilenet_v3_large(weights=None, norm_layer=_norm, width_mult=width_mult,
                              reduced_tail=reduced_tail).features


@MODELS.register
class SSDMobileNetV3(nn.Module):
    """MobileNetV3-Large (torchvision's definition) with SSDlite's extra levels.

    Returns six maps, finest first: C4's expansion (stride 16), C5 (stride 32) and four extra
    levels made of depthwise-separable blocks (strides 64 .. 512); at 320 px: 20, 10, 5, 3, 2, 1.

    Args:
        width_mult: MobileNetV3's width multiplier (the extra levels scale with it too,
            at least ``min_depth`` channels).
        reduced_tail: halve the channels of the last stage (as torchvision's SSDlite when it
            trains without ImageNet weights, and its released COCO model).
        min_depth: the fewest channels of an extra level.

    Attributes:
        out_channels: channels of each returned map.
    """

    def __init__(
        self,
        *,
        width_mult: Annotated[float, Positive] = 1.0,
        reduced_tail: bool = False,
        min_depth: Annotated[int, Positive] = 16,
    ) -> None:
        super().__init__()
        self.width_mult, self.reduced_tail = width_mult, reduced_tail
        self.features = _split_at_c4(_mobilenet_features(width_mult, reduced_tail))
        c4 = self.features[0][-1].out_channels
        c5 = self.features[1][-1].out_channels
        widths = [max(min_depth, int(c * width_mult)) for c in EXTRA_CHANNELS]
        self.extra_layers = nn.ModuleList(
            _extra_block(c_in, c_out) for c_in, c_out in zip([c5, *widths[:-1]], widths)
        )
        self.out_channels = [c4, c5, *widths]
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.normal_(module.weight, std=0.03)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def forward(self, x: Tensor) -> list[Tensor]:
        """(B, 3, H, W) -> one (B, out_channels[l], H_l, W_l) map per level, finest first."""
        outs = []
        for stage in (*self.features, *self.extra_layers):
            x = stage(x)
            outs.append(x)
        return outs

    def load_torchvision_weights(self, checkpoint: str | os.PathLike | Mapping) -> None:
        """Load torchvision's ImageNet MobileNetV3-Large (``torchvision://mobilenet_v3_large``)
        into the two backbone stages; the extra levels keep their initialisation."""
        name = torchvision_name(checkpoint) if not isinstance(checkpoint, Mapping) else None
        if name is not None and name != "mobilenet_v3_large":
            raise ConfigError(f"backbone checkpoint '{checkpoint}' holds {name} weights; "
                              "SSDMobileNetV3 takes 'torchvision://mobilenet_v3_large'")
        if self.reduced_tail or self.width_mult != 1.0:
            raise ConfigError("ImageNet MobileNetV3-Large weights need reduced_tail=False and "
                              "width_mult=1.0")
        source = read_torchvision_state_dict(checkpoint)
        features = _mobilenet_features(self.width_mult, self.reduced_tail)
        state = {k.removeprefix("features."): v for k, v in source.items()
                 if k.startswith("features.")}
        missing, unexpected = features.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise CheckpointError(f"MobileNetV3-Large checkpoint does not fit: missing "
                                  f"{missing[:3]}, unexpected {unexpected[:3]}")
        self.features.load_state_dict(_split_at_c4(features).state_dict())
