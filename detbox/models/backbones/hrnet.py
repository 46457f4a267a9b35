"""HRNetV2 backbone (Wang et al., "Deep High-Resolution Representation Learning for Visual
Recognition", TPAMI 2020), the ``hrnetv2p`` detection backbones.

Instead of going down in resolution and back up (ResNet + FPN), HRNet keeps a stride-4 branch
for the whole network and adds coarser branches stage by stage, exchanging information between
all of them after every module (:mod:`detbox.models.backbones.hrnet_modules`). The four branches
of the last stage (C, 2C, 4C, 8C channels at strides 4, 8, 16, 32; ``C`` is the *width*) are the
outputs; :class:`~detbox.models.necks.HRFPN` turns them into a pyramid.

Module names follow the official implementation (``conv1``, ``bn1``, ``conv2``, ``bn2``,
``layer1``, ``transition1..3``, ``stage2..4``), so its ImageNet checkpoints (and MMDetection's
``open-mmlab://msra/hrnetv2_w*`` copies of them) load key for key through
``init_cfg=dict(backbone_checkpoint=...)``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Annotated

from torch import Tensor, nn
from torchvision.models.resnet import BasicBlock, Bottleneck

from detbox.errors import CheckpointError, ConfigError
from detbox.models.backbones.feature_freezing import StagedFreezing
from detbox.models.backbones.hrnet_modules import (
    HRModule,
    make_branch,
    make_transition,
    run_transition,
)
from detbox.models.backbones.resnet import read_torchvision_state_dict
from detbox.models.layers.frozen_bn_conv import conv_frozen_bn, folded_block_forward
from detbox.models.layers.norm import norm_factory
from detbox.models.pretrained import torchvision_name
from detbox.registry import MODELS
from detbox.typecheck import Positive, Range

__all__ = ["HRNET_CHECKPOINTS", "HRNet"]

_STRIDES = (4, 8, 16, 32)
_STEM_CHANNELS = 64
# The classification head of the official ImageNet checkpoints: not part of the backbone.
_CLASSIFIER_PREFIXES = ("incre_modules.", "downsamp_modules.", "final_layer.", "classifier.")
# The official ImageNet weights as MMDetection publishes them (open-mmlab://msra/hrnetv2_w*).
HRNET_CHECKPOINTS = {
    width: f"https://download.openmmlab.com/pretrain/third_party/hrnetv2_w{width}-{digest}.pth"
    for width, digest in ((18, "00eb2006"), (32, "dc9eeb4f"), (40, "ed0b031c"),
                          (48, "d2186c55"))
}


@MODELS.register
class HRNet(StagedFreezing, nn.Module):
    """HRNetV2: a stem, one Bottleneck stage, then three multi-resolution stages.

    Args:
        width: channels ``C`` of the stride-4 branch (18, 32, 40, 48 in the papers); branch
            ``i`` has ``C * 2**i``.
        num_modules: :class:`HRModule` repeats of stages 2, 3 and 4 (the paper: 1, 4, 3).
        num_blocks: residual blocks per branch in stages 1..4 (Bottlenecks in stage 1,
            BasicBlocks after; the paper: 4 each). Fewer make small models for tests.
        out_indices: branches of the last stage to return, 0..3 (strides 4, 8, 16, 32).
        frozen_stages: -1 trains everything; 0 freezes the stem; k >= 1 also stages 1..k and
            the transitions into stages 2..k+1 (MMDetection's convention).
        norm: ``'BN'`` (default, as the HRNet recipes), ``'SyncBN'``, ``'FrozenBN'`` or
            ``'GN'`` (32 groups, so every branch's channels must divide by 32: W32, W64).
        norm_eval: keep BN/SyncBN layers in eval mode (ImageNet statistics) while training.
        zero_init_residual: zero the last norm of every residual block.

    Attributes:
        out_channels, out_strides: channels and strides of the returned maps.
    """

    def __init__(
        self,
        *,
        width: Annotated[int, Positive] = 32,
        num_modules: Sequence[Annotated[int, Positive]] = (1, 4, 3),
        num_blocks: Sequence[Annotated[int, Positive]] = (4, 4, 4, 4),
        out_indices: Sequence[int] = (0, 1, 2, 3),
        frozen_stages: Annotated[int, Range(ge=-1, le=4)] = -1,
        norm: str = "BN",
        norm_eval: bool = True,
        zero_init_residual: bool = False,
    ) -> None:
        super().__init__()
        if len(num_modules) != 3 or len(num_blocks) != 4:
            raise ConfigError(f"HRNet needs num_modules for stages 2-4 (3 numbers) and "
                              f"num_blocks for stages 1-4 (4 numbers), got {tuple(num_modules)}"
                              f" and {tuple(num_blocks)}")
        if not out_indices or any(i not in range(4) for i in out_indices):
            raise ConfigError(f"HRNet out_indices must be branch indices in 0..3, got "
                              f"{tuple(out_indices)}")
        make_norm = norm_factory(norm)
        self.width, self.norm, self.norm_eval = width, norm, norm_eval
        self.frozen_stages = frozen_stages
        self.out_indices = tuple(out_indices)
        self.out_channels: list[int] = [width * 2**i for i in self.out_indices]
        self.out_strides: list[int] = [_STRIDES[i] for i in self.out_indices]

        self.conv1 = nn.Conv2d(3, _STEM_CHANNELS, 3, stride=2, padding=1, bias=False)
        self.bn1 = make_norm(_STEM_CHANNELS)
        self.conv2 = nn.Conv2d(_STEM_CHANNELS, _STEM_CHANNELS, 3, stride=2, padding=1, bias=False)
        self.bn2 = make_norm(_STEM_CHANNELS)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = make_branch(Bottleneck, _STEM_CHANNELS, _STEM_CHANNELS, num_blocks[0],
                                  make_norm)
        previous = [_STEM_CHANNELS * Bottleneck.expansion]
        for stage in (2, 3, 4):
            channels = [width * 2**i for i in range(stage)]
            setattr(self, f"transition{stage - 1}", make_transition(previous, channels, make_norm))
            setattr(self, f"stage{stage}", nn.Sequential(*(
                HRModule(channels=channels, num_blocks=num_blocks[stage - 1], norm=make_norm)
                for _ in range(num_modules[stage - 2]))))
            previous = channels
        if zero_init_residual:
            self._zero_init_residual()
        self._freeze()

    @property
    def arch_title(self) -> str:
        """The architecture in words, for messages (``'HRNetV2-W32'``)."""
        return f"HRNetV2-W{self.width}"

    @property
    def default_checkpoint(self) -> str | None:
        """The URL of this width's official ImageNet weights, or None (none published)."""
        return HRNET_CHECKPOINTS.get(self.width)

    def checkpoint_hint(self) -> str:
        """Where this architecture's ImageNet weights come from, for messages."""
        url = HRNET_CHECKPOINTS.get(self.width)
        if url is None:
            return f"a file path holding {self.arch_title} weights (none is published)"
        return f"'{url}' (or a file path holding the official {self.arch_title} weights)"

    def _zero_init_residual(self) -> None:
        """Zero the last norm of every residual block, so each starts as an identity."""
        for module in self.modules():
            last = (module.bn3 if isinstance(module, Bottleneck)
                    else module.bn2 if isinstance(module, BasicBlock) else None)
            if last is not None and getattr(last, "weight", None) is not None:
                nn.init.zeros_(last.weight)

    def _frozen_modules(self) -> list[nn.Module]:
        if self.frozen_stages < 0:
            return []
        frozen = [self.conv1, self.bn1, self.conv2, self.bn2]
        for stage in range(1, self.frozen_stages + 1):
            frozen.append(self.layer1 if stage == 1 else getattr(self, f"stage{stage}"))
            if stage < 4:
                frozen.append(getattr(self, f"transition{stage}"))
        return frozen

    def forward(self, images: Tensor) -> list[Tensor]:
        """Map (B, 3, H, W) images to one (B, C * 2**i, H/s_i, W/s_i) map per ``out_indices``
        entry ``i`` (s_i = 4 * 2**i)."""
        x = self.relu(conv_frozen_bn(self.conv1, self.bn1, images))
        x = self.relu(conv_frozen_bn(self.conv2, self.bn2, x))
        for block in self.layer1:
            x = folded_block_forward(block, x)
        feats = [x]
        for stage in (2, 3, 4):
            feats = run_transition(getattr(self, f"transition{stage - 1}"), feats)
            feats = getattr(self, f"stage{stage}")(feats)
        return [feats[i] for i in self.out_indices]

    def load_torchvision_weights(self, checkpoint: str | os.PathLike | Mapping) -> None:
        """Load official-layout HRNet ImageNet weights (a path, an ``https://`` URL or a mapping).

        The classification head of the ImageNet checkpoints (``incre_modules``,
        ``downsamp_modules``, ``final_layer``, ``classifier``) is skipped, and running
        statistics when the norm has none (GN). Missing or unexpected backbone keys, or
        weights of another width, raise CheckpointError naming them.
        """
        if not isinstance(checkpoint, Mapping) and torchvision_name(checkpoint) is not None:
            raise ConfigError(f"backbone checkpoint '{checkpoint}': torchvision publishes no "
                              f"HRNet weights; use {self.checkpoint_hint()}")
        source = read_torchvision_state_dict(checkpoint)
        own = self.state_dict()
        stats = ("running_mean", "running_var", "num_batches_tracked")
        missing = sorted(k for k in own if k not in source and not k.endswith(stats[2]))
        if missing:
            raise CheckpointError(f"{self.arch_title} checkpoint lacks {len(missing)} key(s), "
                                  f"e.g. {missing[:3]}")
        unexpected = sorted(k for k in source if k not in own
                            and not k.startswith(_CLASSIFIER_PREFIXES) and not k.endswith(stats))
        if unexpected:
            raise CheckpointError(
                f"{self.arch_title} checkpoint has {len(unexpected)} unexpected key(s), e.g. "
                f"{unexpected[:3]}; is it an official-layout {self.arch_title}?")
        try:
            self.load_state_dict({k: v for k, v in source.items() if k in own}, strict=False)
        except RuntimeError as exc:
            raise CheckpointError(f"{self.arch_title} checkpoint does not fit (another width?): "
                                  f"{' '.join(str(exc).split())[:400]}") from exc
