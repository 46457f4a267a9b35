"""ResNet backbone on torchvision's block definitions.

We reuse ``torchvision.models.resnet`` (built with ``weights=None`` and our norm layer) rather than
re-implementing the blocks, so torchvision's ImageNet state dicts load key for key. What this
module adds is what detection needs around it: multi-scale outputs, frozen early stages, BN
layers that stay in eval mode while the rest trains, and deformable 3x3 convs in chosen stages
(``dcn`` / ``stage_with_dcn``). ResNeXt (``resnext.py``) is the same network with grouped convs.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Annotated, Literal

import torch
from torch import Tensor, nn
from torchvision.models import resnet as tv_resnet

from detbox.errors import CheckpointError, ConfigError
from detbox.models.backbones.feature_freezing import StagedFreezing
from detbox.models.backbones.resnet_style import apply_style, check_style
from detbox.models.layers.conv_ws import conv_like
from detbox.models.layers.deform_conv import deformable_like
from detbox.models.layers.frozen_bn_conv import (
    PLUGIN_POSITIONS,
    conv_frozen_bn,
    folded_block_forward,
    plug_into,
)
from detbox.models.layers.non_local import NonLocal2d
from detbox.models.layers.norm import norm_factory
from detbox.models.pretrained import TORCHVISION_NAMES, resolve_checkpoint, torchvision_name
from detbox.registry import MODELS, nested_path
from detbox.typecheck import Range

__all__ = ["ResNet", "make_resnet_stage", "read_torchvision_state_dict"]

_BUILDERS = {
    18: tv_resnet.resnet18,
    34: tv_resnet.resnet34,
    50: tv_resnet.resnet50,
    101: tv_resnet.resnet101,
    152: tv_resnet.resnet152,
}
_STAGE_NAMES = ("layer1", "layer2", "layer3", "layer4")
_STAGE_STRIDES = (4, 8, 16, 32)
_STEM_NAMES = ("conv1", "bn1", "relu", "maxpool")


def _torchvision_resnet(depth: int, norm: str, zero_init_residual: bool, groups: int = 1,
                        width_per_group: int = 64) -> tv_resnet.ResNet:
    """torchvision's ResNet (``groups`` x ``width_per_group`` > 1 x 64: ResNeXt), no weights."""
    if depth not in _BUILDERS:
        raise ConfigError(f"ResNet depth must be one of {sorted(_BUILDERS)}, got {depth}")
    return _BUILDERS[depth](
        weights=None, norm_layer=norm_factory(norm), zero_init_residual=zero_init_residual,
        groups=groups, width_per_group=width_per_group,
    )


def make_resnet_stage(*, depth: int = 50, stage: int = 3, norm: str = "FrozenBN",
                      style: str = "pytorch") -> nn.Sequential:
    """A fresh copy of one residual stage, e.g. res5 as the box head of a C4 detector.

    Args:
        depth: ResNet depth (18, 34, 50, 101, 152).
        stage: stage index 0..3 (C2..C5); its input has the channels of stage ``stage - 1``.
        norm: normalization layer name (see ``detbox.models.layers.NORM_CHOICES``).
        style: where the first bottleneck downsamples, ``'pytorch'`` (3x3 conv) or
            ``'caffe'`` (first 1x1 conv); see :mod:`detbox.models.backbones.resnet_style`.

    Returns:
        The torchvision ``layer{stage+1}`` module; its ImageNet weights are the
        ``layer{stage+1}.*`` keys of ``read_torchvision_state_dict(...)``.
    """
    if stage not in range(4):
        raise ConfigError(f"ResNet stage must be in 0..3, got {stage}")
    return apply_style(getattr(_torchvision_resnet(depth, norm, False), _STAGE_NAMES[stage]),
                       style)


def read_torchvision_state_dict(checkpoint: str | os.PathLike | Mapping) -> dict[str, Tensor]:
    """Read a torchvision-format ImageNet ResNet state dict (keys ``conv1.weight``, ``layer1..``).

    Accepts a path, a ``torchvision://resnet50`` / ``https://`` name (see
    :func:`detbox.models.pretrained.resolve_checkpoint`: read from torch's hub cache, downloaded
    when absent) or an already-loaded mapping, optionally wrapped in ``{'state_dict': ...}`` or
    ``{'model': ...}`` and with ``module.`` prefixes (as saved from DataParallel).
    """
    if not isinstance(checkpoint, Mapping):
        checkpoint = resolve_checkpoint(checkpoint)
        if not os.path.isfile(checkpoint):
            raise CheckpointError(f"ResNet checkpoint not found: {checkpoint}")
        checkpoint = torch.load(checkpoint, map_location="cpu", weights_only=True)
    for wrapper in ("state_dict", "model"):
        if wrapper in checkpoint and isinstance(checkpoint[wrapper], Mapping):
            checkpoint = checkpoint[wrapper]
    return {k.removeprefix("module."): v for k, v in checkpoint.items()}


@MODELS.register
class ResNet(StagedFreezing, nn.Module):
    """ResNet returning the feature maps of selected stages.

    Args:
        depth: 18, 34 (basic blocks) or 50, 101, 152 (bottlenecks).
        style: ``'pytorch'`` puts the stride of a stage's first bottleneck in its 3x3 conv
            (torchvision's weights), ``'caffe'`` in its first 1x1 conv (the MSRA / Detectron
            weights, converted by ``detbox convert-weights detectron-caffe``; they expect BGR
            input minus the mean, std 1). Basic blocks are the same in both styles.
        out_indices: stages to return, 0..3 for C2..C5 (strides 4, 8, 16, 32).
        num_stages: stages to build (3 drops res5, for C4 detectors whose box head holds it).
        frozen_stages: -1 trains everything; 0 freezes the stem; k freezes the stem and stages
            1..k. Frozen parts get ``requires_grad=False`` and stay in eval mode.
        norm: ``'FrozenBN'`` (default: small detection batches make BN statistics noisy),
            ``'BN'``, ``'SyncBN'`` or ``'GN'``.
        norm_eval: keep BN/SyncBN layers in eval mode (fixed statistics) while training.
        zero_init_residual: zero the last norm of each block so blocks start as identities.
        non_local_stages: stage indices (0..3) that get a NonLocal2d block after every other
            residual block, as the non-local paper does for res4 (``(2,)``).
        non_local: keyword arguments of those NonLocal2d blocks (e.g. ``dict(reduction=2)``).
            They live outside the torchvision stages, so ImageNet weights still load key for key.
        dcn: a deformable conv config, ``dict(type="DCN", deform_groups=1)`` (v1) or
            ``dict(type="DCNv2", ...)`` (modulated), for the 3x3 conv (``conv2``) of every
            bottleneck of the stages ``stage_with_dcn`` selects; None: plain convs only.
            Its offsets start at zero (the plain conv), and the plain conv's ImageNet weight
            loads into it (``layerX.Y.conv2.weight``); only ``conv2.conv_offset.*`` is new.
        stage_with_dcn: one flag per stage (C2..C5); ``(False, True, True, True)`` is the
            papers' "c3-c5". Needs bottlenecks (depth >= 50).
        conv_cfg: a conv config replacing every plain ``nn.Conv2d`` of the stem and stages
            (downsample convs included), e.g. ``dict(type="ConvWS")`` for Weight
            Standardization (with ``norm="GN"``: the GN+WS recipes). The weights are kept and
            the keys unchanged, so ImageNet weights load as before. Deformable convs
            (``dcn``) and non-local blocks keep their own convs. None: plain convs.
        plugins: modules inserted into the bottlenecks of chosen stages, each
            ``dict(cfg=dict(type="ContextBlock", ratio=1/16), stages=(False, True, True, True),
            position="after_conv3")``. ``position="after_conv3"``: run on the residual branch
            after conv3 and its norm, before the sum, built with ``in_channels`` of the block's
            output (GCNet); ``"after_conv2"``: run after conv2, its norm and ReLU, built with
            the block's width (``dict(type="GeneralizedAttention", ...)``). One plug-in per
            position and block. Their keys (``layerX.Y.after_conv2.*``,
            ``layerX.Y.after_conv3.*``) are new; ImageNet weights load.
    """

    def __init__(
        self,
        *,
        depth: Literal[18, 34, 50, 101, 152] = 50,
        style: Literal["pytorch", "caffe"] = "pytorch",
        out_indices: Sequence[int] = (1, 2, 3),
        num_stages: Literal[1, 2, 3, 4] = 4,
        frozen_stages: Annotated[int, Range(ge=-1, le=4)] = 1,
        norm: str = "FrozenBN",
        norm_eval: bool = True,
        zero_init_residual: bool = False,
        non_local_stages: Sequence[int] = (),
        non_local: Mapping | None = None,
        dcn: Mapping | None = None,
        stage_with_dcn: Sequence[bool] = (False, False, False, False),
        conv_cfg: Mapping | None = None,
        plugins: Sequence[Mapping] = (),
    ) -> None:
        super().__init__()
        self.style = check_style(style, type(self).__name__)
        if num_stages not in (1, 2, 3, 4):
            raise ConfigError(f"ResNet num_stages must be in 1..4, got {num_stages}")
        if not out_indices or any(i not in range(num_stages) for i in out_indices):
            raise ConfigError(
                f"ResNet out_indices must be stage indices in 0..{num_stages - 1}, "
                f"got {tuple(out_indices)}"
            )
        if not -1 <= frozen_stages <= num_stages:
            raise ConfigError(
                f"ResNet frozen_stages must be in -1..{num_stages}, got {frozen_stages}"
            )
        net = self._torchvision_net(depth, norm, zero_init_residual)
        for name in _STEM_NAMES + _STAGE_NAMES[:num_stages]:
            self.add_module(name, getattr(net, name))
            if name in _STAGE_NAMES:
                apply_style(getattr(self, name), style)
        self.depth = depth
        self.norm = norm
        self.num_stages = num_stages
        self.out_indices = tuple(out_indices)
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval
        expansion = 4 if depth >= 50 else 1
        self.out_channels: list[int] = [64 * 2**i * expansion for i in self.out_indices]
        self.out_strides: list[int] = [_STAGE_STRIDES[i] for i in self.out_indices]
        self.non_local = self._build_non_local(non_local_stages, dict(non_local or {}), expansion)
        self.stage_with_dcn = self._add_deformable_convs(
            dcn, tuple(bool(flag) for flag in stage_with_dcn))
        self._replace_convs(conv_cfg)
        for index, plugin in enumerate(plugins):
            self._add_plugin(plugin, f"{nested_path(plugins) or 'backbone.plugins'}[{index}]")
        self._freeze()

    def _torchvision_net(self, depth: int, norm: str, zero_init_residual: bool
                         ) -> tv_resnet.ResNet:
        """The torchvision network whose stem and stages this backbone takes over."""
        return _torchvision_resnet(depth, norm, zero_init_residual)

    @property
    def arch(self) -> str:
        """torchvision's name of this architecture (``'resnet50'``), as in ``torchvision://``."""
        return f"resnet{self.depth}"

    @property
    def arch_title(self) -> str:
        """The architecture in words, for messages (``'ResNet-50'``)."""
        return f"ResNet-{self.depth}"

    def checkpoint_hint(self) -> str:
        """Where this architecture's ImageNet weights come from, for messages."""
        if self.arch in TORCHVISION_NAMES:
            return f"'torchvision://{self.arch}'"
        return f"a file path holding {self.arch_title} weights (torchvision publishes none)"

    def _add_deformable_convs(self, dcn: Mapping | None, stages: tuple[bool, ...]
                              ) -> tuple[bool, ...]:
        """Replace ``conv2`` of every block of the selected stages by a deformable conv."""
        if len(stages) != 4:
            raise ConfigError(f"ResNet stage_with_dcn needs one flag per stage (4), got {stages}")
        if dcn is None:
            if any(stages):
                raise ConfigError("ResNet stage_with_dcn selects stages but dcn is None; set "
                                  "dcn=dict(type='DCN') (or 'DCNv2')")
            return stages
        if not any(stages):
            raise ConfigError("ResNet dcn is set but stage_with_dcn selects no stage, e.g. "
                              "stage_with_dcn=(False, True, True, True)")
        if self.depth < 50:
            raise ConfigError(f"ResNet dcn needs bottleneck blocks (depth >= 50), got depth "
                              f"{self.depth}")
        unbuilt = [i for i, on in enumerate(stages) if on and i >= self.num_stages]
        if unbuilt:
            raise ConfigError(f"ResNet stage_with_dcn selects stage(s) {unbuilt} but only "
                              f"{self.num_stages} stages are built (num_stages)")
        path = nested_path(dcn) or "backbone.dcn"
        for stage, on in enumerate(stages):
            for block in getattr(self, _STAGE_NAMES[stage]) if on else ():
                block.conv2 = deformable_like(block.conv2, dcn, path=path)
        return stages

    def _replace_convs(self, conv_cfg: Mapping | None) -> None:
        """Swap every plain Conv2d of the stem and stages for ``conv_cfg``'s conv type."""
        if conv_cfg is None:
            return
        path = nested_path(conv_cfg) or "backbone.conv_cfg"
        for stage in _STAGE_NAMES[:self.num_stages]:
            for module in getattr(self, stage).modules():
                for name, child in list(module._modules.items()):
                    if type(child) is nn.Conv2d:
                        module._modules[name] = conv_like(child, conv_cfg, path=path)
        if type(self.conv1) is nn.Conv2d:
            self.conv1 = conv_like(self.conv1, conv_cfg, path=path)

    def _add_plugin(self, plugin: Mapping, path: str) -> None:
        """Plug ``plugin['cfg']`` at its position into every bottleneck of its stages."""
        unknown = sorted(set(plugin) - {"cfg", "stages", "position"})
        if unknown or "cfg" not in plugin:
            raise ConfigError(f"{path} takes the keys cfg, stages, position; got {sorted(plugin)}")
        position = plugin.get("position", "after_conv3")
        if position not in PLUGIN_POSITIONS:
            raise ConfigError(f"{path}: position {position!r} is not supported; use one of "
                              f"{', '.join(map(repr, PLUGIN_POSITIONS))}")
        stages = tuple(bool(flag) for flag in plugin.get("stages", (True,) * 4))
        if len(stages) != 4:
            raise ConfigError(f"{path}: stages needs one flag per stage (4), got {stages}")
        if self.depth < 50:
            raise ConfigError(f"{path}: plug-ins need bottleneck blocks (depth >= 50), got "
                              f"depth {self.depth}")
        for stage, on in enumerate(stages[:self.num_stages]):
            for block in getattr(self, _STAGE_NAMES[stage]) if on else ():
                if position in block._modules:
                    raise ConfigError(f"{path}: stage {stage} already has an {position} "
                                      "plug-in; one per position")
                # after conv2 the branch has the bottleneck's width, after conv3 its output's
                channels = (block.conv3.in_channels if position == "after_conv2"
                            else block.conv3.out_channels)
                module = MODELS.build(plugin["cfg"], path=f"{path}.cfg", in_channels=channels)
                plug_into(block, position, module)

    def _build_non_local(
        self, stages: Sequence[int], options: dict, expansion: int
    ) -> nn.ModuleDict:
        """NonLocal2d blocks keyed ``'<stage>_<block>'``, after blocks 1, 3, 5, ... of a stage."""
        if any(i not in range(self.num_stages) for i in stages):
            raise ConfigError(
                f"ResNet non_local_stages must be in 0..{self.num_stages - 1}, got {tuple(stages)}"
            )
        blocks = nn.ModuleDict()
        for stage in stages:
            channels = 64 * 2**stage * expansion
            for index in range(1, len(getattr(self, _STAGE_NAMES[stage])), 2):
                blocks[f"{stage}_{index}"] = NonLocal2d(in_channels=channels, **options)
        return blocks

    def _run_stage(self, stage: int, x: Tensor) -> Tensor:
        # Frozen BN runs folded into the conv before it (one pass fewer per norm, each way);
        # other norms and fused inference blocks run as they are. Past the first block, a block's
        # input is the previous module's output, which only it reads (unless a forward hook of
        # that module kept it), so a fused block may write its output over it.
        owned = False  # the stage's input: the caller (and the outputs list) holds it
        for index, block in enumerate(getattr(self, _STAGE_NAMES[stage])):
            x = folded_block_forward(block, x, input_owned=owned)
            owned = not block._forward_hooks
            key = f"{stage}_{index}"
            if key in self.non_local:
                x = self.non_local[key](x)
                owned = not self.non_local[key]._forward_hooks
        return x

    def _frozen_modules(self) -> list[nn.Module]:
        if self.frozen_stages < 0:
            return []
        stem = [self.conv1, self.bn1]
        stages = [getattr(self, _STAGE_NAMES[i]) for i in range(self.frozen_stages)]
        non_local = [
            m for k, m in self.non_local.items() if int(k.split("_")[0]) < self.frozen_stages
        ]
        return stem + stages + non_local

    def forward(self, images: Tensor) -> list[Tensor]:
        """Map (B, 3, H, W) images to one (B, C_i, H/s_i, W/s_i) map per ``out_indices`` entry."""
        x = self.maxpool(self.relu(conv_frozen_bn(self.conv1, self.bn1, images)))
        outs = []
        for index in range(self.num_stages):
            x = self._run_stage(index, x)
            if index in self.out_indices:
                outs.append(x)
        return outs

    def load_torchvision_weights(self, checkpoint: str | os.PathLike | Mapping) -> None:
        """Load a torchvision-format ImageNet ResNet state dict (path, URI or mapping).

        The classifier (``fc.*``) and stages this backbone does not build are skipped; running
        statistics are skipped when the norm layer has none (GN); non-local blocks and the
        offset convs of deformable convs keep their initialization. Anything else that does
        not fit raises CheckpointError naming the keys.
        """
        name = torchvision_name(checkpoint) if not isinstance(checkpoint, Mapping) else None
        if name is not None and name != self.arch:
            raise ConfigError(
                f"backbone checkpoint '{checkpoint}' holds {name} weights, but the backbone is a "
                f"{self.arch_title}: use {self.checkpoint_hint()}"
            )
        source = read_torchvision_state_dict(checkpoint)
        # Non-local blocks, deformable convs' offset convs and plug-ins are ours: they start
        # from their own (zero) initialization.
        own = {k: v for k, v in self.state_dict().items()
               if not k.startswith("non_local.") and ".conv_offset." not in k
               and not any(f".{p}." in k for p in PLUGIN_POSITIONS)}
        missing = sorted(
            k for k in own if k not in source and not k.endswith("num_batches_tracked")
        )
        if missing:
            raise CheckpointError(
                f"{self.arch_title} checkpoint lacks {len(missing)} key(s), e.g. {missing[:3]}"
            )
        skipped = ("fc.", *(f"{n}." for n in _STAGE_NAMES[self.num_stages:]))
        stats = ("running_mean", "running_var", "num_batches_tracked")
        unexpected = sorted(
            k for k in source
            if k not in own and not k.startswith(skipped) and not k.endswith(stats)
        )
        if unexpected:
            raise CheckpointError(
                f"{self.arch_title} checkpoint has {len(unexpected)} unexpected key(s), "
                f"e.g. {unexpected[:3]}; is it a torchvision {self.arch_title}?"
            )
        try:
            self.load_state_dict({k: v for k, v in source.items() if k in own}, strict=False)
        except RuntimeError as exc:
            raise CheckpointError(f"{self.arch_title} checkpoint does not fit: {exc}") from exc
