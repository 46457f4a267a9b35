"""Feature Pyramid Network (Lin et al., 2017) with the RetinaNet / Faster R-CNN extra levels."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal

import torch.nn.functional as F
from torch import Tensor, nn

from detbox.errors import ConfigError
from detbox.models.fused_conv import conv_add
from detbox.models.layers.carafe import CARAFE
from detbox.models.layers.conv_ws import conv_like
from detbox.models.layers.norm import build_norm
from detbox.registry import MODELS, nested_path
from detbox.typecheck import Positive

__all__ = ["FPN"]

_EXTRA_CHOICES = ("input", "output", None)
_UPSAMPLE_CHOICES = ("nearest", "carafe")


def _conv(in_ch: int, out_ch: int, kernel: int, stride: int, norm: str | None,
          conv_cfg: Mapping[str, Any] | None = None) -> nn.Module:
    """A conv (of ``conv_cfg``'s type, e.g. ``'ConvWS'``; plain when None), then ``norm``."""
    conv = nn.Conv2d(in_ch, out_ch, kernel, stride=stride, padding=kernel // 2, bias=norm is None)
    nn.init.kaiming_uniform_(conv.weight, a=1)
    if conv.bias is not None:
        nn.init.zeros_(conv.bias)
    if conv_cfg is not None:
        conv = conv_like(conv, conv_cfg, path=nested_path(conv_cfg) or "neck.conv_cfg")
    return nn.Sequential(conv, build_norm(norm, out_ch)) if norm else conv


@MODELS.register
class FPN(nn.Module):
    """Top-down pathway with lateral connections, plus extra coarser levels.

    Args:
        in_channels: channels of each input map, finest first (e.g. C3, C4, C5).
        out_channels: channels of every output level.
        num_outs: output levels; ``num_outs - len(in_channels)`` extra levels are added on top.
        extra_convs: how extra levels are made. ``'input'``: stride-2 3x3 convs starting from the
            coarsest *input* (C5), as in the RetinaNet paper; ``'output'``: the same starting from
            the coarsest *output* (P5), as torchvision's RetinaNet; ``None``: stride-2 max-pooling
            of the previous level (the FPN paper's P6 for Faster R-CNN).
        relu_before_extra: apply ReLU before every extra conv after the first (P7 = conv(relu(P6))).
        norm: optional normalization after each conv (e.g. ``'GN'``); convs then have no bias.
        conv_cfg: the type of every conv (lateral, output, extra), e.g. ``dict(type='ConvWS')``
            for Weight Standardization (with ``norm='GN'``: the GN+WS recipes); None: plain.
        upsample_cfg: how the top-down pathway upsamples: ``None`` or ``dict(type='nearest')``
            (the paper), or ``dict(type='carafe', k_up=5, k_enc=3, compressed_channels=64)``
            for a learned CARAFE upsampler per level (the other keys go to
            :class:`~detbox.models.layers.CARAFE`).
    """

    def __init__(
        self,
        *,
        in_channels: Sequence[Annotated[int, Positive]],
        out_channels: Annotated[int, Positive] = 256,
        num_outs: Annotated[int, Positive] = 5,
        extra_convs: Literal["input", "output"] | None = "input",
        relu_before_extra: bool = True,
        norm: str | None = None,
        upsample_cfg: Mapping[str, Any] | None = None,
        conv_cfg: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if extra_convs not in _EXTRA_CHOICES:
            raise ConfigError(
                f"FPN extra_convs must be one of {_EXTRA_CHOICES}, got {extra_convs!r}"
            )
        if num_outs < len(in_channels):
            raise ConfigError(
                f"FPN num_outs={num_outs} is smaller than the {len(in_channels)} input levels"
            )
        self.in_channels = list(in_channels)
        self.out_channels = out_channels
        self.num_outs = num_outs
        self.extra_convs = extra_convs
        self.relu_before_extra = relu_before_extra
        self.upsamplers = _build_upsamplers(upsample_cfg, out_channels, len(in_channels) - 1)
        self.lateral_convs = nn.ModuleList(
            _conv(c, out_channels, 1, 1, norm, conv_cfg) for c in in_channels)
        self.output_convs = nn.ModuleList(
            _conv(out_channels, out_channels, 3, 1, norm, conv_cfg) for _ in in_channels
        )
        num_extra = num_outs - len(in_channels)
        self.extra_level_convs = nn.ModuleList()
        if extra_convs is not None:
            first_in = in_channels[-1] if extra_convs == "input" else out_channels
            for i in range(num_extra):
                in_ch = first_in if i == 0 else out_channels
                self.extra_level_convs.append(_conv(in_ch, out_channels, 3, 2, norm, conv_cfg))

    def forward(self, feats: Sequence[Tensor]) -> list[Tensor]:
        """Map input maps (finest first) to ``num_outs`` maps of ``out_channels`` channels.

        Args:
            feats: ``len(in_channels)`` tensors (B, C_i, H_i, W_i), each level about half the size
                of the previous one (odd sizes are fine: upsampling targets the exact size).

        Returns:
            ``num_outs`` tensors (B, out_channels, H, W), finest first.
        """
        if len(feats) != len(self.in_channels):
            raise ValueError(f"FPN expects {len(self.in_channels)} input maps, got {len(feats)}")
        outs = self.top_down(feats)
        return self.extra_levels(feats, outs)

    def top_down(self, feats: Sequence[Tensor]) -> list[Tensor]:
        """Lateral 1x1 convs, the top-down sums, then the 3x3 output convs: one map per input."""
        laterals = [self.lateral_convs[-1](feats[-1])]
        for i in range(len(feats) - 1, 0, -1):
            size = feats[i - 1].shape[-2:]
            if self.upsamplers is None:
                upsampled = F.interpolate(laterals[0], size=size, mode="nearest")
            else:  # CARAFE doubles the size; odd finer levels are one pixel smaller
                upsampled = self.upsamplers[i - 1](laterals[0])[..., : size[0], : size[1]]
            # lateral(x) + upsampled: one oneDNN kernel at CPU inference, written over the
            # (fresh) nearest upsampling
            laterals.insert(0, conv_add(self.lateral_convs[i - 1], feats[i - 1], upsampled,
                                        into_other=self.upsamplers is None))
        return [conv(x) for conv, x in zip(self.output_convs, laterals)]

    def extra_levels(self, feats: Sequence[Tensor], outs: list[Tensor]) -> list[Tensor]:
        """Append the ``num_outs - len(in_channels)`` coarser levels to ``outs``."""
        num_extra = self.num_outs - len(outs)
        if self.extra_convs is None:
            for _ in range(num_extra):
                outs.append(F.max_pool2d(outs[-1], kernel_size=1, stride=2))
            return outs
        x = feats[-1] if self.extra_convs == "input" else outs[-1]
        for i, conv in enumerate(self.extra_level_convs):
            if i > 0 and self.relu_before_extra:
                x = F.relu(x)
            x = conv(x)
            outs.append(x)
        return outs


def _build_upsamplers(
    cfg: Mapping[str, Any] | None, channels: int, num: int
) -> nn.ModuleList | None:
    """None for nearest upsampling, else one CARAFE per top-down step."""
    cfg = dict(cfg or {"type": "nearest"})
    kind = str(cfg.pop("type", "nearest")).lower()
    if kind not in _UPSAMPLE_CHOICES:
        raise ConfigError(
            f"FPN upsample_cfg type must be one of {_UPSAMPLE_CHOICES}, got {kind!r}")
    if kind == "nearest":
        if cfg:
            raise ConfigError(f"FPN nearest upsampling takes no options, got {sorted(cfg)}")
        return None
    if cfg.get("scale", 2) != 2:
        raise ConfigError("FPN CARAFE upsampling must have scale 2 (one pyramid step)")
    return nn.ModuleList(MODELS.build({"type": CARAFE, "channels": channels, **cfg})
                         for _ in range(num))
