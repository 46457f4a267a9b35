"""Any timm network as a detection backbone, through ``timm.create_model(features_only=True)``.

timm (``pip install "detbox[timm]"``) is optional: importing detbox never needs it, building a
``TimmBackbone`` does. The model is built without weights; ``pretrained_file`` names a local
timm state dict that :meth:`TimmBackbone.init_weights` loads before training (construction
reads no file, so building a model to load a trained detector into needs neither the file nor
the network).
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping, Sequence
from types import ModuleType
from typing import Annotated

import torch
from torch import Tensor, nn

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

__all__ = ["TimmBackbone", "import_timm"]

TIMM_INSTALL_HINT = 'pip install "detbox[timm]"'


def import_timm() -> ModuleType:
    """The ``timm`` module, or a ConfigError saying how to install it."""
    try:
        return importlib.import_module("timm")
    except ImportError as exc:
        raise ConfigError(
            f"TimmBackbone needs the timm package, which is not installed: {TIMM_INSTALL_HINT}"
        ) from exc


def _normalized(key: str) -> str:
    # timm's feature wrappers flatten 'stages.1' into a child named 'stages_1'.
    return key.replace("_", ".")


@MODELS.register
class TimmBackbone(nn.Module):
    """A timm feature extractor returning the maps of selected feature levels.

    Args:
        model_name: a timm model name (``timm.list_models()``), e.g. ``'convnext_tiny'``,
            ``'resnet18d'``, ``'efficientnet_b0'``.
        out_indices: timm feature levels to return, finest first. Levels follow timm's
            ``feature_info``: ConvNeXt and Swin have four (strides 4..32), ResNets,
            EfficientNets and MobileNets five with a stride-2 stem level first, so their
            C3..C5 are ``(2, 3, 4)``. ``out_strides`` tells which strides were picked.
        pretrained_file: a local state dict loaded by :meth:`init_weights`: either timm's
            classification model's (``timm.create_model(model_name).state_dict()``, optionally
            in ``{'state_dict': ...}``) or this backbone's own. None: random initialization.
        frozen_stages: -1 trains everything; k >= 0 freezes every module that runs before
            feature level k (0: the stem), in timm's level numbering.
        norm_eval: keep BN layers in eval mode (fixed statistics) while training.
        model_kwargs: further keyword arguments of ``timm.create_model`` (e.g.
            ``dict(drop_path_rate=0.1)``).

    Attributes:
        out_channels: channels of each returned map, from ``feature_info``.
        out_strides: stride of each returned map relative to the input.
    """

    def __init__(
        self,
        *,
        model_name: str,
        out_indices: Sequence[int] = (1, 2, 3),
        pretrained_file: str | None = None,
        frozen_stages: Annotated[int, Range(ge=-1)] = -1,
        norm_eval: bool = False,
        model_kwargs: Mapping | None = None,
    ) -> None:
        super().__init__()
        timm = import_timm()
        if not timm.is_model(model_name):
            raise ConfigError(
                f"TimmBackbone: unknown timm model '{model_name}'; list them with "
                f"timm.list_models('{model_name.split('_')[0]}*')"
            )
        try:
            self.model = timm.create_model(
                model_name, features_only=True, out_indices=tuple(out_indices),
                pretrained=False, **dict(model_kwargs or {}))
        except (IndexError, ValueError, AssertionError) as exc:
            raise ConfigError(
                f"TimmBackbone '{model_name}' cannot return out_indices={tuple(out_indices)}: "
                f"{exc}") from exc
        self.model_name = model_name
        self.pretrained_file = pretrained_file
        self.norm_eval = norm_eval
        info = self.model.feature_info
        self.out_channels: list[int] = list(info.channels())
        self.out_strides: list[int] = list(info.reduction())
        levels = [level["module"] for level in info.info]
        if not frozen_stages <= len(levels):
            raise ConfigError(f"TimmBackbone frozen_stages must be in -1..{len(levels)} for "
                              f"'{model_name}', got {frozen_stages}")
        self.frozen_stages = frozen_stages
        self._frozen = self._frozen_modules(levels)
        freeze(self._frozen)

    def _frozen_modules(self, levels: list[str]) -> list[nn.Module]:
        if self.frozen_stages < 0:
            return []
        if self.frozen_stages == len(levels):
            return [m for name, m in self.model.named_modules() if name]
        boundary = levels[self.frozen_stages]
        return modules_before(self.model, (boundary, boundary.replace(".", "_")))

    def frozen_parts(self) -> list[str]:
        """What stays at its initial value while training without ``pretrained_file``."""
        if self.pretrained_file is not None:
            return []
        parts = []
        if self.frozen_stages >= 0:
            parts.append(f"the modules before feature level {self.frozen_stages} "
                         f"(frozen_stages={self.frozen_stages})")
        if self.norm_eval:
            parts.append("the BN statistics (norm_eval=True)")
        return parts

    def train(self, mode: bool = True) -> TimmBackbone:
        """Switch modes, keeping frozen modules and (with ``norm_eval``) BN layers in eval."""
        super().train(mode)
        if mode:
            keep_eval(self._frozen)
            if self.norm_eval:
                set_batch_norms_eval(self)
        return self

    def forward(self, images: Tensor) -> list[Tensor]:
        """Map (B, 3, H, W) images to one (B, C_i, H/s_i, W/s_i) map per ``out_indices`` entry."""
        return list(self.model(images))

    def init_weights(self) -> str | None:
        """Load ``pretrained_file`` (see the class doc); None when there is none."""
        if self.pretrained_file is None:
            return None
        self.load_timm_weights(self.pretrained_file)
        return f"pretrained {self.model_name} weights from {self.pretrained_file}"

    def load_timm_weights(self, checkpoint: str | os.PathLike | Mapping) -> None:
        """Load a timm state dict (path or mapping), strictly: any key that does not fit fails.

        Raises:
            CheckpointError: a missing file, or keys missing from / unexpected in the file
                (named), or tensors whose shapes do not fit.
        """
        if not isinstance(checkpoint, Mapping) and not os.path.isfile(checkpoint):
            raise CheckpointError(f"TimmBackbone pretrained_file not found: {checkpoint}")
        source = read_torchvision_state_dict(checkpoint)
        own = self.model.state_dict()
        if set(source) != set(own):
            source = self._from_classifier(source)
        try:
            self.model.load_state_dict(source, strict=True)
        except RuntimeError as exc:
            raise CheckpointError(f"{self.model_name} weights do not fit: {exc}") from exc

    def _from_classifier(self, source: dict[str, Tensor]) -> dict[str, Tensor]:
        """The feature extractor's tensors out of a whole timm classification state dict."""
        full = import_timm().create_model(self.model_name, pretrained=False)
        expected = set(full.state_dict())
        missing = sorted(expected - set(source))
        unexpected = sorted(set(source) - expected)
        if missing or unexpected:
            raise CheckpointError(
                f"{self.pretrained_file or 'checkpoint'} is not a timm '{self.model_name}' "
                f"state dict: {len(missing)} missing key(s) {missing[:5]}, "
                f"{len(unexpected)} unexpected key(s) {unexpected[:5]}")
        by_name = {_normalized(k): v for k, v in source.items()}
        picked = {k: by_name.get(_normalized(k)) for k in self.model.state_dict()}
        lost = sorted(k for k, v in picked.items() if v is None)
        if lost:
            raise CheckpointError(f"cannot place {len(lost)} feature key(s) of "
                                  f"{self.model_name} in its state dict, e.g. {lost[:5]}")
        return {k: torch.as_tensor(v) for k, v in picked.items()}
