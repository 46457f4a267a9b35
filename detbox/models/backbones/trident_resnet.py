"""TridentNet's backbone (Li et al., "Scale-Aware Trident Networks", ICCV 2019).

One ResNet stage (res4 of a C4 detector) runs as several parallel branches that share every
weight and differ only in the dilation of their 3x3 convolutions (1, 2, 3 in the paper): the
same filters see small, medium and large receptive fields. The branches leave the backbone as
extra batch entries, branch-major: a (B, 3, H, W) batch becomes (num_branches * B, C, h, w),
rows ``k * B + i`` holding branch ``k`` of image ``i``. Everything downstream (RPN, RoI head)
treats them as ordinary images.

The stage keeps torchvision's ``Bottleneck`` / ``BasicBlock`` modules (so ImageNet weights load
key for key); a trident block is those modules' parts applied with a per-branch dilation by
:func:`trident_block_forward`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from detbox.errors import ConfigError
from detbox.models.backbones.resnet import ResNet
from detbox.registry import MODELS
from detbox.typecheck import Range

__all__ = ["TridentResNet", "dilated_conv", "trident_block_forward"]


def dilated_conv(conv: nn.Conv2d, x: Tensor, dilation: int) -> Tensor:
    """``conv`` applied with its own weights at ``dilation``; 1x1 convs are left as they are.

    The padding grows with the dilation, so a 3x3 conv keeps its output size at any dilation.
    """
    if conv.kernel_size[0] == 1 or dilation == conv.dilation[0]:
        return conv(x)
    padding = dilation * (conv.kernel_size[0] // 2)
    return F.conv2d(x, conv.weight, conv.bias, conv.stride, padding, dilation, conv.groups)


def _norm(block: nn.Module, name: str) -> nn.Module:
    # The inference fast path folds norms into the convs (and may drop them entirely).
    return getattr(block, name, None) or nn.Identity()


def trident_block_forward(block: nn.Module, x: Tensor, dilation: int) -> Tensor:
    """One branch of a trident block: a torchvision residual block at ``dilation``.

    Works on torchvision's ``Bottleneck`` and ``BasicBlock`` and on their inference forms
    (norms folded, see ``detbox.models.inference_mode``): it reads only the blocks' ``convX``,
    ``bnX`` and ``downsample`` parts.

    Args:
        block: the residual block whose weights every branch shares.
        x: (B, C_in, H, W) this branch's input.
        dilation: dilation of the block's 3x3 convolutions in this branch.

    Returns:
        (B, C_out, H', W'), as ``block(x)`` would at dilation 1.
    """
    convs = [name for name in ("conv1", "conv2", "conv3") if hasattr(block, name)]
    out = x
    for index, name in enumerate(convs, start=1):
        out = _norm(block, f"bn{index}")(dilated_conv(getattr(block, name), out, dilation))
        if index < len(convs):
            out = F.relu(out)
    identity = x if block.downsample is None else block.downsample(x)
    return F.relu(out + identity)


@MODELS.register
class TridentResNet(ResNet):
    """ResNet whose ``trident_stage`` runs as weight-sharing branches of different dilations.

    Args:
        trident_stage: the stage made of trident blocks (2: res4, as in the paper's C4
            detector); it must be the last stage built (``num_stages = trident_stage + 1``),
            whose output is the one returned.
        dilations: one dilation per branch, (1, 2, 3) in the paper.
        test_branch_idx: the branch computed in eval mode ("TridentNet Fast" uses the middle
            one, 1), or -1 to compute every branch at test time too.
        depth, style, out_indices, num_stages, frozen_stages, norm, norm_eval,
            zero_init_residual, non_local_stages, non_local: as for ``ResNet`` (defaults: a C4
            backbone).

    Output:
        A list with one (N * B, C, H/16, W/16) map, N the active branches
        (:meth:`active_branches`), branch-major.
    """

    def __init__(
        self,
        *,
        depth: Literal[18, 34, 50, 101, 152] = 50,
        style: Literal["pytorch", "caffe"] = "pytorch",
        out_indices: Sequence[int] = (2,),
        num_stages: Literal[1, 2, 3, 4] = 3,
        trident_stage: int = 2,
        dilations: Sequence[int] = (1, 2, 3),
        test_branch_idx: Annotated[int, Range(ge=-1)] = 1,
        frozen_stages: Annotated[int, Range(ge=-1, le=4)] = 1,
        norm: str = "FrozenBN",
        norm_eval: bool = True,
        zero_init_residual: bool = False,
        non_local_stages: Sequence[int] = (),
        non_local: Mapping | None = None,
    ) -> None:
        super().__init__(depth=depth, style=style, out_indices=out_indices, num_stages=num_stages,
                         frozen_stages=frozen_stages, norm=norm, norm_eval=norm_eval,
                         zero_init_residual=zero_init_residual,
                         non_local_stages=non_local_stages, non_local=non_local)
        if trident_stage != num_stages - 1 or tuple(out_indices) != (trident_stage,):
            raise ConfigError(
                f"TridentResNet: the trident stage ({trident_stage}) must be the last stage "
                f"built (num_stages={num_stages}) and the only output (out_indices="
                f"{tuple(out_indices)}); use num_stages={trident_stage + 1}, "
                f"out_indices=({trident_stage},)"
            )
        if not dilations or any(int(d) < 1 for d in dilations):
            raise ConfigError(f"TridentResNet dilations must be >= 1, got {tuple(dilations)}")
        if not -1 <= test_branch_idx < len(dilations):
            raise ConfigError(
                f"TridentResNet test_branch_idx must be -1 (all branches) or in "
                f"0..{len(dilations) - 1}, got {test_branch_idx}"
            )
        if any(key.startswith(f"{trident_stage}_") for key in self.non_local):
            raise ConfigError("TridentResNet: the trident stage cannot hold non-local blocks")
        self.trident_stage = trident_stage
        self.dilations = tuple(int(d) for d in dilations)
        self.test_branch_idx = test_branch_idx

    @property
    def num_branches(self) -> int:
        return len(self.dilations)

    def active_branches(self) -> tuple[int, ...]:
        """Indices of the branches the next forward computes, in output order: all of them
        while training (or with ``test_branch_idx=-1``), else ``(test_branch_idx,)``."""
        if self.training or self.test_branch_idx == -1:
            return tuple(range(self.num_branches))
        return (self.test_branch_idx,)

    def _run_stage(self, stage: int, x: Tensor) -> Tensor:
        if stage != self.trident_stage:
            return super()._run_stage(stage, x)
        dilations = [self.dilations[k] for k in self.active_branches()]
        branches = [x] * len(dilations)
        for block in getattr(self, f"layer{stage + 1}"):
            branches = [trident_block_forward(block, b, d) for b, d in zip(branches, dilations)]
        return torch.cat(branches, dim=0)
