"""SSD's VGG-16 (Liu et al., 2016): conv4_3 (L2-normalised) and fc7 maps plus extra layers."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Annotated, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from detbox.errors import CheckpointError, ConfigError
from detbox.models.backbones.resnet import read_torchvision_state_dict
from detbox.models.pretrained import torchvision_name
from detbox.registry import MODELS
from detbox.typecheck import Positive

__all__ = ["SSDVGG"]

# VGG-16's conv widths by stage, as torchvision's ``vgg16().features``.
VGG16_STAGES = ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512))
# (out_channels of the 1x1 conv, of the 3x3 conv, 3x3 stride, 3x3 padding) per extra level:
# SSD300's conv8_2 .. conv11_2 (10, 5, 3, 1 at 300 px); SSD512's conv8_2 .. conv12_2, the last
# with a 4x4 kernel (16, 8, 4, 2, 1 at 512 px, as the paper and MMDetection).
SSD300_EXTRAS = ((256, 512, 2, 1), (128, 256, 2, 1), (128, 256, 1, 0), (128, 256, 1, 0))
SSD512_EXTRAS = ((256, 512, 2, 1), (128, 256, 2, 1), (128, 256, 2, 1), (128, 256, 2, 1),
                 (128, 256, 1, 1))
TORCHVISION_CHECKPOINTS = ("vgg16", "vgg16_features")


def _vgg_features(width_mult: float) -> tuple[nn.Sequential, nn.Sequential]:
    """conv1_1 .. relu4_3 and pool4 .. relu5_3 (pool3 in ceil mode, pool5 left out): torchvision's
    ``vgg16().features[:23]`` and ``[23:30]``, the second indexed from 0 (as its SSD keeps it)."""
    layers: list[nn.Module] = []
    in_channels, conv4_end = 3, 0
    for stage, widths in enumerate(VGG16_STAGES):
        if stage > 0:
            layers.append(nn.MaxPool2d(2, 2, ceil_mode=stage == 3))
        for width in widths:
            width = max(8, int(width * width_mult))
            layers += [nn.Conv2d(in_channels, width, 3, padding=1), nn.ReLU(inplace=True)]
            in_channels = width
        if stage == 3:
            conv4_end = len(layers)
    return nn.Sequential(*layers[:conv4_end]), nn.Sequential(*layers[conv4_end:])


def _extra_block(in_channels: int, spec: Sequence[int], width_mult: float, last: bool,
                 highres: bool) -> nn.Sequential:
    mid, out, stride, padding = spec
    mid, out = max(8, int(mid * width_mult)), max(8, int(out * width_mult))
    kernel = 4 if last and highres else 3
    return nn.Sequential(
        nn.Conv2d(in_channels, mid, 1), nn.ReLU(inplace=True),
        nn.Conv2d(mid, out, kernel, stride=stride, padding=padding), nn.ReLU(inplace=True),
    )


@MODELS.register
class SSDVGG(nn.Module):
    """VGG-16 reshaped for SSD, returning one map per prior level, finest first.

    conv4_3's map (stride 8) is L2-normalised over channels and rescaled by a learned
    per-channel scale (initialised to ``l2_norm_scale``), because its magnitude differs from the
    deeper maps'. ``features`` (conv1_1 .. relu4_3) and ``conv5`` (pool4 .. relu5_3) are
    VGG-16's layers; pool5 becomes 3x3 stride 1, fc6 a 3x3 conv with dilation 6 and fc7 a 1x1 conv
    (1024 channels, stride 16); extra layers (1x1 then 3x3 convs) halve the map down to 1x1.

    Args:
        input_size: 300 (SSD300: 6 maps, 38 .. 1 at 300 px) or 512 (SSD512: 7 maps, 64 .. 1).
        width_mult: scales every width (1.0 is VGG-16; smaller only for tests and small
            experiments, it has no pretrained weights).
        l2_norm_scale: initial value of conv4_3's per-channel scale (20 in the paper).

    Attributes:
        out_channels: channels of each returned map.
    """

    def __init__(
        self,
        *,
        input_size: Literal[300, 512] = 300,
        width_mult: Annotated[float, Positive] = 1.0,
        l2_norm_scale: Annotated[float, Positive] = 20.0,
    ) -> None:
        super().__init__()
        if input_size not in (300, 512):
            raise ConfigError(f"SSDVGG input_size must be 300 or 512, got {input_size}")
        self.features, self.conv5 = _vgg_features(width_mult)
        conv4, conv5 = self.features[-2].out_channels, self.conv5[-2].out_channels
        fc_width = max(8, int(1024 * width_mult))
        self.l2_norm_scale = nn.Parameter(torch.full((conv4,), float(l2_norm_scale)))
        self.fc = nn.Sequential(
            nn.MaxPool2d(3, stride=1, padding=1),
            nn.Conv2d(conv5, fc_width, 3, padding=6, dilation=6), nn.ReLU(inplace=True),
            nn.Conv2d(fc_width, fc_width, 1), nn.ReLU(inplace=True),
        )
        specs = SSD512_EXTRAS if input_size == 512 else SSD300_EXTRAS
        blocks, in_channels = [], fc_width
        for i, spec in enumerate(specs):
            blocks.append(_extra_block(in_channels, spec, width_mult, i == len(specs) - 1,
                                       input_size == 512))
            in_channels = blocks[-1][2].out_channels
        self.extra_layers = nn.ModuleList(blocks)
        self.out_channels = [conv4, fc_width, *(block[2].out_channels for block in blocks)]
        self.width_mult = width_mult
        self._init_weights()

    def _init_weights(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)

    def forward(self, x: Tensor) -> list[Tensor]:
        """(B, 3, H, W) -> one (B, out_channels[l], H_l, W_l) map per level, finest first."""
        x = self.features(x)
        outs = [self.l2_norm_scale.view(1, -1, 1, 1) * F.normalize(x, dim=1)]
        x = self.fc(self.conv5(x))
        outs.append(x)
        for block in self.extra_layers:
            x = block(x)
            outs.append(x)
        return outs

    def load_torchvision_weights(self, checkpoint: str | os.PathLike | Mapping) -> None:
        """Load torchvision's ImageNet VGG-16 convs (``features.*``) into conv1_1 .. conv5_3.

        ``torchvision://vgg16_features`` holds the weights torchvision's SSD starts from (they
        expect 0-255 inputs minus the mean, std 1); ``torchvision://vgg16`` the usual ones.
        fc6, fc7 and the extra layers keep their initialisation; the classifier is skipped.
        """
        name = torchvision_name(checkpoint) if not isinstance(checkpoint, Mapping) else None
        if name is not None and name not in TORCHVISION_CHECKPOINTS:
            raise ConfigError(f"backbone checkpoint '{checkpoint}' holds {name} weights; SSDVGG "
                              "takes 'torchvision://vgg16_features' or 'torchvision://vgg16'")
        if self.width_mult != 1.0:
            raise ConfigError("SSDVGG with width_mult != 1 has no pretrained VGG-16 weights")
        source = read_torchvision_state_dict(checkpoint)
        first = len(self.features)
        wanted = {f"features.{k}": (self.features, k) for k in self.features.state_dict()}
        for key in self.conv5.state_dict():
            index, name = key.split(".", 1)
            wanted[f"features.{int(index) + first}.{name}"] = (self.conv5, key)
        missing = [k for k in wanted if k not in source]
        if missing:
            raise CheckpointError(f"VGG-16 checkpoint lacks {len(missing)} key(s), e.g. "
                                  f"{missing[:3]}")
        for part in (self.features, self.conv5):
            part.load_state_dict({key: source[src] for src, (owner, key) in wanted.items()
                                  if owner is part})
