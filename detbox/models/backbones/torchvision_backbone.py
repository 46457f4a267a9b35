"""torchvision classification networks as detection backbones, via its feature-extraction API.

``torchvision.models.get_model(name, weights=None)`` builds the network;
``create_feature_extractor`` cuts it at the last node of each resolution. Those nodes are
derived, not tabulated: the network's trunk (``features`` for MobileNet / EfficientNet /
ConvNeXt / Swin / VGG, ``stem`` + ``trunk_output`` for RegNet, the top-level children for
ResNet) runs once on a dummy image at build time, and the last trunk module of each stride
4, 8, 16, 32 becomes feature level 0..3, as ResNet's C2..C5. Its channels come from the same
pass. Swin's stages return (B, H, W, C) maps: they are permuted to (B, C, H, W).
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping, Sequence
from typing import Annotated

import torch
import torchvision
from torch import Tensor, nn
from torchvision.models.feature_extraction import create_feature_extractor
from torchvision.ops.misc import FrozenBatchNorm2d

from detbox.errors import CheckpointError, ConfigError
from detbox.models.backbones.feature_freezing import (
    freeze,
    keep_eval,
    modules_before,
    set_batch_norms_eval,
)
from detbox.models.backbones.resnet import read_torchvision_state_dict
from detbox.registry import MODELS
from detbox.typecheck import Range

__all__ = ["TorchvisionBackbone", "trunk_levels"]

_LEVEL_STRIDES = (4, 8, 16, 32)
_HEAD_NAMES = ("avgpool", "fc", "classifier", "head", "norm", "permute", "flatten")
_PROBE_SIZE = 64  # a multiple of 32; Swin pads its windows


def _trunk(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The modules that run in sequence before the classifier, with qualified names."""
    if isinstance(getattr(model, "features", None), nn.Sequential):
        return [(f"features.{k}", m) for k, m in model.features.named_children()]
    if hasattr(model, "trunk_output"):  # RegNet
        return [("stem", model.stem)] + [
            (f"trunk_output.{k}", m) for k, m in model.trunk_output.named_children()]
    return [(k, m) for k, m in model.named_children() if k not in _HEAD_NAMES]


def trunk_levels(model: nn.Module, channels_last: bool) -> list[tuple[str, str, int]]:
    """For each stride 4, 8, 16, 32: the first and last trunk module at it, and its channels.

    Args:
        model: a torchvision classification network (any device, meta included).
        channels_last: the trunk's maps are (B, H, W, C) (Swin).

    Raises:
        ConfigError: the trunk does not reach every stride (an unsupported family, e.g. ViT).
    """
    param = next(model.parameters())
    x = torch.zeros(1, 3, _PROBE_SIZE, _PROBE_SIZE, device=param.device, dtype=param.dtype)
    first: dict[int, str] = {}
    last: dict[int, tuple[str, int]] = {}
    with torch.no_grad():
        for name, module in _trunk(model):
            try:
                x = module(x)
            except (RuntimeError, AssertionError, ValueError):
                break  # a part that does not take the previous one's map (not a trunk)
            if not isinstance(x, Tensor) or x.dim() != 4:
                break
            height, channels = (x.shape[1], x.shape[3]) if channels_last else x.shape[2:0:-1]
            stride = _PROBE_SIZE // int(height)
            first.setdefault(stride, name)
            last[stride] = (name, int(channels))
    if any(stride not in last for stride in _LEVEL_STRIDES):
        raise ConfigError(
            f"TorchvisionBackbone: {type(model).__name__} has no sequential trunk with maps at "
            f"strides {_LEVEL_STRIDES} (found {sorted(last)}); supported families include "
            "ResNet/ResNeXt, RegNet, MobileNetV2/V3, EfficientNet, ConvNeXt, Swin and VGG")
    return [(first[s], *last[s]) for s in _LEVEL_STRIDES]


def _freeze_batch_norms(model: nn.Module) -> None:
    """Replace every BatchNorm2d of ``model`` by a FrozenBatchNorm2d holding its buffers."""
    for name, child in model.named_children():
        if isinstance(child, nn.BatchNorm2d):
            frozen = FrozenBatchNorm2d(child.num_features, eps=child.eps)
            setattr(model, name, frozen.to(child.weight.device))
        else:
            _freeze_batch_norms(child)


def _get_model(model_name: str, model_kwargs: Mapping) -> nn.Module:
    names = torchvision.models.list_models(module=torchvision.models)
    if model_name not in names:
        close = difflib.get_close_matches(model_name, names, n=3)
        raise ConfigError(
            f"TorchvisionBackbone: unknown torchvision model '{model_name}'"
            + (f"; did you mean {', '.join(close)}?" if close else ""))
    return torchvision.models.get_model(model_name, weights=None, **model_kwargs)


@MODELS.register
class TorchvisionBackbone(nn.Module):
    """A torchvision classification network returning its maps at strides 4..32.

    Args:
        model_name: a ``torchvision.models.list_models()`` name: ``'mobilenet_v3_large'``,
            ``'regnet_y_400mf'``, ``'convnext_tiny'``, ``'swin_t'``, ``'efficientnet_b0'``, ...
        out_indices: levels to return, 0..3 for strides 4, 8, 16, 32 (C2..C5), finest first.
        weights_file: a torchvision state dict of the whole classification network (as
            ``get_model(model_name, weights=...).state_dict()`` saves it) that
            :meth:`init_weights` loads; None: random initialization. Construction reads no file.
        frozen_stages: -1 trains everything; k >= 0 freezes every module that runs before
            level k's module starts (0: the stem and the stride-2 blocks).
        frozen_bn: replace every BatchNorm2d by a FrozenBatchNorm2d (statistics and affine
            fixed, torchvision detection's choice on ImageNet weights).
        norm_eval: keep (unfrozen) BN layers in eval mode while training.
        model_kwargs: further keyword arguments of ``get_model`` (e.g.
            ``dict(stochastic_depth_prob=0.1)``).

    Attributes:
        out_channels, out_strides: channels and strides of each returned map.
        return_nodes: the graph nodes cut out of the network, one per returned map.
    """

    def __init__(
        self,
        *,
        model_name: str,
        out_indices: Sequence[int] = (1, 2, 3),
        weights_file: str | None = None,
        frozen_stages: Annotated[int, Range(ge=-1, le=4)] = -1,
        frozen_bn: bool = False,
        norm_eval: bool = False,
        model_kwargs: Mapping | None = None,
    ) -> None:
        super().__init__()
        if not out_indices or any(i not in range(4) for i in out_indices):
            raise ConfigError(f"TorchvisionBackbone out_indices must be levels in 0..3 "
                              f"(strides 4..32), got {tuple(out_indices)}")
        model = _get_model(model_name, dict(model_kwargs or {}))
        self.channels_last = model_name.startswith("swin")
        levels = trunk_levels(model, self.channels_last)
        if frozen_bn:
            _freeze_batch_norms(model)
        self.return_nodes = [levels[i][1] for i in out_indices]
        self.body = create_feature_extractor(
            model, return_nodes={node: str(i) for i, node in enumerate(self.return_nodes)})
        self.model_name = model_name
        self.weights_file = weights_file
        self.frozen_bn = frozen_bn
        self.norm_eval = norm_eval
        self.frozen_stages = frozen_stages
        self.out_channels: list[int] = [levels[i][2] for i in out_indices]
        self.out_strides: list[int] = [_LEVEL_STRIDES[i] for i in out_indices]
        self._frozen = self._frozen_modules([start for start, _, _ in levels])
        freeze(self._frozen)

    def _frozen_modules(self, starts: list[str]) -> list[nn.Module]:
        """Modules before the first trunk module of level ``frozen_stages`` (all at 4)."""
        if self.frozen_stages < 0:
            return []
        if self.frozen_stages == len(starts):
            return [m for name, m in self.body.named_modules() if name]
        return modules_before(self.body, (starts[self.frozen_stages],))

    def frozen_parts(self) -> list[str]:
        """What stays at its initial value while training without ``weights_file``."""
        if self.weights_file is not None:
            return []
        parts = []
        if self.frozen_stages >= 0:
            parts.append(f"the modules before level {self.frozen_stages} "
                         f"(frozen_stages={self.frozen_stages})")
        if self.frozen_bn:
            parts.append("every BN layer (frozen_bn=True)")
        elif self.norm_eval:
            parts.append("the BN statistics (norm_eval=True)")
        return parts

    def train(self, mode: bool = True) -> TorchvisionBackbone:
        """Switch modes, keeping frozen modules and (with ``norm_eval``) BN layers in eval."""
        super().train(mode)
        if mode:
            keep_eval(self._frozen)
            if self.norm_eval:
                set_batch_norms_eval(self)
        return self

    def forward(self, images: Tensor) -> list[Tensor]:
        """Map (B, 3, H, W) images to one (B, C_i, H/s_i, W/s_i) map per ``out_indices`` entry."""
        maps = self.body(images)
        outs = [maps[str(i)] for i in range(len(self.return_nodes))]
        if self.channels_last:
            outs = [x.permute(0, 3, 1, 2).contiguous() for x in outs]
        return outs

    def init_weights(self) -> str | None:
        """Load ``weights_file`` (see the class doc); None when there is none."""
        if self.weights_file is None:
            return None
        self.load_torchvision_weights(self.weights_file)
        return f"pretrained {self.model_name} weights from {self.weights_file}"

    def load_torchvision_weights(self, checkpoint: str | os.PathLike | Mapping) -> None:
        """Load a torchvision state dict of the whole network (path or mapping).

        Keys of parts the extractor does not keep (the classifier, levels after the last
        returned one) are skipped; every kept tensor must be in the file with its shape.

        Raises:
            CheckpointError: a missing file, missing keys (named) or shapes that do not fit.
        """
        if not isinstance(checkpoint, Mapping) and not os.path.isfile(checkpoint):
            raise CheckpointError(f"TorchvisionBackbone weights file not found: {checkpoint}")
        source = read_torchvision_state_dict(checkpoint)
        own = self.body.state_dict()
        missing = sorted(k for k in own if k not in source)
        if missing:
            raise CheckpointError(
                f"{checkpoint if not isinstance(checkpoint, Mapping) else 'checkpoint'} is not "
                f"a torchvision {self.model_name} state dict: {len(missing)} missing key(s), "
                f"e.g. {missing[:5]}")
        try:
            self.body.load_state_dict({k: source[k] for k in own}, strict=True)
        except RuntimeError as exc:
            raise CheckpointError(f"{self.model_name} weights do not fit: {exc}") from exc

