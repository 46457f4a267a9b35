"""Where a strided bottleneck downsamples: the 3x3 conv (``'pytorch'``) or the first 1x1
(``'caffe'``).

torchvision (and fb.torch, whose weights it took over) put the stride of a stage's first
bottleneck in ``conv2``, the 3x3 conv. The original MSRA ResNets, trained in Caffe, and the
Detectron models built on them put it in ``conv1``, the 1x1 conv that opens the block: the 3x3
then runs at the lower resolution. Both networks have the same weights shape for shape, so the
style only moves the stride; but weights trained in one style give different features in the
other, which is why detection toolboxes carry the option (MMDetection's ``style``). Basic blocks
(ResNet-18/34) have no 1x1 conv before their strided 3x3; the style changes nothing there.
"""

from __future__ import annotations

from torch import nn
from torchvision.models.resnet import Bottleneck

from detbox.errors import ConfigError

__all__ = ["RESNET_STYLES", "apply_style", "check_style"]

RESNET_STYLES = ("pytorch", "caffe")


def check_style(style: str, owner: str = "ResNet") -> str:
    """``style`` if it is one of :data:`RESNET_STYLES`, else a ConfigError naming ``owner``."""
    if style not in RESNET_STYLES:
        raise ConfigError(f"{owner} style must be one of {RESNET_STYLES}, got {style!r}")
    return style


def apply_style(stage: nn.Sequential, style: str) -> nn.Sequential:
    """Move the stride of ``stage``'s bottlenecks from ``conv2`` to ``conv1`` for ``'caffe'``.

    Works in place on torchvision blocks before any conv is replaced (deformable or weight
    standardized convs copy the stride of the conv they replace); parameters and state-dict keys
    are untouched. ``'pytorch'`` and basic blocks are left as they are.

    Returns:
        ``stage`` itself.
    """
    if check_style(style) == "pytorch":
        return stage
    for block in stage:
        if isinstance(block, Bottleneck) and block.conv2.stride != (1, 1):
            block.conv1.stride, block.conv2.stride = block.conv2.stride, (1, 1)
    return stage
