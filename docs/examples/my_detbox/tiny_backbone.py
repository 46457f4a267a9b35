"""A backbone: any nn.Module that maps images to a list of feature maps, finest first."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from detbox.registry import MODELS


def _conv(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 3, stride=2, padding=1),
                         nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True))


@MODELS.register
class TinyConvNet(nn.Module):
    """Stride-2 conv blocks; returns the maps at strides 8, 16 and 32.

    Args:
        widths: output channels of the maps at strides 8, 16 and 32.
    """

    def __init__(self, *, widths: Sequence[int] = (32, 64, 128)) -> None:
        super().__init__()
        self.stem = nn.Sequential(_conv(3, 16), _conv(16, 16))  # stride 4
        channels = [16, *widths]
        self.stages = nn.ModuleList(_conv(c_in, c_out)
                                    for c_in, c_out in zip(channels, channels[1:]))

    def forward(self, images: Tensor) -> list[Tensor]:
        """(B, 3, H, W) -> [(B, widths[i], H / 2**(i + 3), W / 2**(i + 3)) for each stage]."""
        x = self.stem(images)
        outs = []
        for stage in self.stages:
            x = stage(x)
            outs.append(x)
        return outs
