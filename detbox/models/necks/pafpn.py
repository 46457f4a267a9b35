"""Path Aggregation FPN (PANet, Liu et al., 2018): an FPN plus a bottom-up path that brings the
precise localisation of the finest level to the coarser ones in a few layers."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal

from torch import Tensor, nn

from detbox.models.necks.fpn import FPN, _conv
from detbox.registry import MODELS
from detbox.typecheck import Positive

__all__ = ["PAFPN"]


@MODELS.register
class PAFPN(FPN):
    """FPN top-down pathway, then bottom-up path augmentation, then the FPN's extra levels.

    Bottom-up (the paper's N_2..N_5): ``N_2 = P_2`` and
    ``N_{i+1} = conv3x3(P_{i+1} + conv3x3_stride2(N_i))``, so the finest output equals the FPN's
    and every coarser one is changed. Extra levels are made as in :class:`FPN`, from ``N_5`` for
    ``extra_convs='output'``. The arguments are the FPN's. As in MMDetection's recipes the convs
    have no ReLU; unlike MMDetection (which feeds the sum before the 3x3 conv downwards) the
    stride-2 conv reads ``N_i`` itself, as the paper draws it.
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
        super().__init__(in_channels=in_channels, out_channels=out_channels, num_outs=num_outs,
                         extra_convs=extra_convs, relu_before_extra=relu_before_extra, norm=norm,
                         upsample_cfg=upsample_cfg, conv_cfg=conv_cfg)
        num_steps = len(self.in_channels) - 1
        self.downsample_convs = nn.ModuleList(
            _conv(self.out_channels, self.out_channels, 3, 2, norm, conv_cfg)
            for _ in range(num_steps))
        self.bottom_up_convs = nn.ModuleList(
            _conv(self.out_channels, self.out_channels, 3, 1, norm, conv_cfg)
            for _ in range(num_steps))

    def forward(self, feats: Sequence[Tensor]) -> list[Tensor]:
        """Map input maps (finest first) to ``num_outs`` maps of ``out_channels`` channels.

        Args:
            feats: ``len(in_channels)`` tensors (B, C_i, H_i, W_i), finest first; each about half
                the size of the previous one (a stride-2 3x3 conv of level i has level i+1's size).

        Returns:
            ``num_outs`` tensors (B, out_channels, H, W), finest first.
        """
        if len(feats) != len(self.in_channels):
            raise ValueError(f"PAFPN expects {len(self.in_channels)} input maps, got {len(feats)}")
        tops = self.top_down(feats)
        outs = [tops[0]]
        for down, conv, top in zip(self.downsample_convs, self.bottom_up_convs, tops[1:]):
            outs.append(conv(top + down(outs[-1])))
        return self.extra_levels(feats, outs)
