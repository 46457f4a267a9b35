"""NAS-FPN (Ghiasi et al., "NAS-FPN: Learning Scalable Feature Pyramid Architecture for Object
Detection", 2019): the pyramid found by architecture search for RetinaNet, stacked.

One stage is seven merging cells over P3-P7. A cell resizes its two inputs to its output level
(max-pooling down, nearest upsampling up), combines them by a sum or by global-pool attention,
and, when its result is an output, runs ReLU -> 3x3 conv -> norm on it. The stage found in the
paper (its Figure 7b) is hard-wired in :meth:`NASFPN._run_stage`; ``stack_times`` repeats it with
its own weights (7 stages at 256 channels for the paper's R-50 RetinaNet).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Annotated, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from detbox.errors import ConfigError
from detbox.models.necks.fpn import _conv
from detbox.registry import MODELS
from detbox.typecheck import Positive, Range

__all__ = ["MergingCell", "NASFPN", "resize_to"]

# The searched stage has exactly these five levels: P3..P7.
_NUM_LEVELS = 5


def resize_to(x: Tensor, size: Sequence[int]) -> Tensor:
    """(B, C, h, w) -> (B, C, *size): max-pooled by the integer factor when larger, nearest-
    upsampled when smaller (a pyramid level differs from its neighbours by powers of two)."""
    size = tuple(int(s) for s in size)
    if tuple(x.shape[-2:]) == size:
        return x
    if x.shape[-2] > size[0]:
        factor = math.ceil(x.shape[-2] / size[0])
        x = F.max_pool2d(x, kernel_size=factor, stride=factor, ceil_mode=True)
    if tuple(x.shape[-2:]) != size:
        x = F.interpolate(x, size=size, mode="nearest")
    return x


class MergingCell(nn.Module):
    """One NAS-FPN merging cell: resize both inputs, combine, optionally ReLU-conv-norm.

    Args:
        channels: channels of both inputs and of the output.
        op: ``'sum'`` (``a + b``) or ``'global_pool'`` (``b + sigmoid(avgpool(b)) * a``: the
            second input's global average, squashed, weights the first, as in the paper).
        with_out_conv: run ReLU -> 3x3 conv -> norm on the result (cells whose result is a
            level of the stage's output; the intermediate global-pool cells have none).
        norm: normalization after the conv (``'BN'`` in the paper), or None.
    """

    def __init__(self, *, channels: int, op: Literal["sum", "global_pool"],
                 with_out_conv: bool = True, norm: str | None = "BN") -> None:
        super().__init__()
        self.op = op
        self.out_conv = (nn.Sequential(nn.ReLU(), _conv(channels, channels, 3, 1, norm))
                         if with_out_conv else None)

    def forward(self, a: Tensor, b: Tensor, size: Sequence[int]) -> Tensor:
        """Two (B, C, h_i, w_i) maps -> (B, C, *size)."""
        a, b = resize_to(a, size), resize_to(b, size)
        if self.op == "sum":
            out = a + b
        else:
            out = b + torch.sigmoid(b.mean(dim=(2, 3), keepdim=True)) * a
        return out if self.out_conv is None else self.out_conv(out)


def _stage(channels: int, norm: str | None) -> nn.ModuleDict:
    """The seven cells of one searched stage, named ``<op>_<inputs>_<output level>``."""
    def cell(op: str, with_out_conv: bool = True) -> MergingCell:
        return MergingCell(channels=channels, op=op, with_out_conv=with_out_conv, norm=norm)
    return nn.ModuleDict({
        "gp_64_4": cell("global_pool"),
        "sum_44_4": cell("sum"),
        "sum_43_3": cell("sum"),
        "sum_34_4": cell("sum"),
        "gp_43_5": cell("global_pool", with_out_conv=False),
        "sum_55_5": cell("sum"),
        "gp_54_7": cell("global_pool", with_out_conv=False),
        "sum_77_7": cell("sum"),
        "gp_75_6": cell("global_pool"),
    })


@MODELS.register
class NASFPN(nn.Module):
    """Lateral 1x1 convs onto P3-P5, extra levels P6-P7, then ``stack_times`` searched stages.

    Args:
        in_channels: channels of each backbone map, finest first (e.g. C2..C5).
        out_channels: channels of every level.
        num_outs: output levels; the searched stage is defined on five (P3-P7).
        stack_times: stages, each with its own weights (7 in the paper's R-50 model).
        start_level: first backbone map used (1 skips C2 of a C2..C5 backbone).
        end_level: last backbone map used (inclusive); -1: the last.
        add_extra_convs: make each extra level by a 1x1 conv (and norm) before the stride-2
            max-pooling, as in the paper's released model; False: max-pooling only.
        norm: normalization after every conv (``'BN'``, trained, in the paper), or None.

    Shapes: maps (B, C_i, H/s_i, W/s_i) -> ``num_outs`` maps (B, out_channels, H/s, W/s) with
    strides ``s = s_start * 2**k``.
    """

    def __init__(
        self,
        *,
        in_channels: Sequence[Annotated[int, Positive]],
        out_channels: Annotated[int, Positive] = 256,
        num_outs: Annotated[int, Positive] = 5,
        stack_times: Annotated[int, Positive] = 7,
        start_level: Annotated[int, Range(ge=0)] = 0,
        end_level: int = -1,
        add_extra_convs: bool = True,
        norm: str | None = "BN",
    ) -> None:
        super().__init__()
        self.in_channels = list(in_channels)
        end = len(self.in_channels) - 1 if end_level == -1 else end_level
        if not start_level <= end < len(self.in_channels):
            raise ConfigError(f"NASFPN start_level={start_level}, end_level={end_level} do not "
                              f"select maps of the {len(self.in_channels)} inputs")
        used = end - start_level + 1
        if num_outs != _NUM_LEVELS or used > num_outs:
            raise ConfigError(f"NASFPN's searched stage has {_NUM_LEVELS} levels (P3-P7): "
                              f"num_outs must be {_NUM_LEVELS}, got {num_outs}, from at most "
                              f"{_NUM_LEVELS} inputs, got {used}")
        self.out_channels = out_channels
        self.num_outs = num_outs
        self.start_level = start_level
        self.end_level = end
        self.lateral_convs = nn.ModuleList(
            _conv(c, out_channels, 1, 1, norm) for c in self.in_channels[start_level:end + 1])
        self.extra_convs = nn.ModuleList(
            _conv(out_channels, out_channels, 1, 1, norm) if add_extra_convs else nn.Identity()
            for _ in range(num_outs - used))
        self.stages = nn.ModuleList(_stage(out_channels, norm) for _ in range(stack_times))

    def forward(self, feats: Sequence[Tensor]) -> list[Tensor]:
        """Backbone maps, finest first -> ``num_outs`` maps P3..P7, finest first."""
        if len(feats) != len(self.in_channels):
            raise ValueError(f"NASFPN expects {len(self.in_channels)} input maps, got "
                             f"{len(feats)}")
        levels = [conv(x) for conv, x in
                  zip(self.lateral_convs, feats[self.start_level:self.end_level + 1])]
        for conv in self.extra_convs:
            levels.append(F.max_pool2d(conv(levels[-1]), kernel_size=2, stride=2,
                                       ceil_mode=True))
        for stage in self.stages:
            levels = self._run_stage(stage, levels)
        return levels

    @staticmethod
    def _run_stage(stage: nn.ModuleDict, levels: list[Tensor]) -> list[Tensor]:
        """The searched wiring: P3..P7 in, P3..P7 out (the paper's Figure 7b)."""
        p3, p4, p5, p6, p7 = levels
        size = [p.shape[-2:] for p in levels]
        p4_1 = stage["gp_64_4"](p6, p4, size[1])
        p4_2 = stage["sum_44_4"](p4_1, p4, size[1])
        p3 = stage["sum_43_3"](p4_2, p3, size[0])
        p4 = stage["sum_34_4"](p3, p4_2, size[1])
        p5 = stage["sum_55_5"](p5, stage["gp_43_5"](p4, p3, size[2]), size[2])
        p7 = stage["sum_77_7"](p7, stage["gp_54_7"](p5, p4_2, size[4]), size[4])
        p6 = stage["gp_75_6"](p7, p5, size[3])
        return [p3, p4, p5, p6, p7]
