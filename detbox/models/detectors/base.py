"""What every detector shares: backbone + neck, and mapping results back to the original image."""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from torch import Tensor, nn

from detbox.errors import ConfigError
from detbox.models.pretrained import TORCHVISION_NAMES, checkpoint_url
from detbox.registry import MODELS, nested_path
from detbox.structures import DetSample, ImageBatch, Instances, boxes_to_original

__all__ = [
    "BaseDetector", "check_neck_in_channels", "frozen_without_weights",
    "neck_in_channels_missing", "rescale_to_original", "with_neck_in_channels",
]

_INIT_KEYS = ("backbone_checkpoint",)


def rescale_to_original(instances: Instances, sample: DetSample) -> Instances:
    """Map ``instances.boxes`` from ``sample.img_shape`` back to ``sample.ori_shape`` (clipped).

    Fields other than ``boxes`` (masks included) are left untouched.
    """
    boxes = boxes_to_original(instances.boxes, sample.img_shape, sample.scale_factor,
                              sample.flip, ori_shape=sample.ori_shape)
    return replace(instances, boxes=boxes)


def neck_in_channels_missing(neck: Mapping[str, Any] | nn.Module | None) -> bool:
    """True for a neck config that leaves ``in_channels`` to the backbone (absent or None)."""
    return isinstance(neck, Mapping) and neck.get("in_channels") is None


def with_neck_in_channels(neck: Mapping[str, Any], backbone: nn.Module) -> dict[str, Any]:
    """``neck`` with ``in_channels`` set to the backbone's output channels, finest first.

    So a recipe can change ``backbone.depth`` (or ``out_indices``) without restating the neck.
    """
    channels = getattr(backbone, "out_channels", None)
    if channels is None:
        raise ConfigError(
            f"neck.in_channels is not set and {type(backbone).__name__} does not report its "
            "out_channels; set neck.in_channels in the config"
        )
    return {**neck, "in_channels": list(channels)}


def check_neck_in_channels(neck: Mapping[str, Any], backbone: nn.Module) -> None:
    """Fail on a neck whose given ``in_channels`` are not the backbone's ``out_channels``.

    A neck config may leave ``in_channels`` out (the detector fills them); a stated value is
    checked, so that replacing the backbone of a recipe that states them fails at build time
    with both lists named, not at the first forward pass with a conv shape error.
    """
    given = neck.get("in_channels")
    channels = getattr(backbone, "out_channels", None)
    if channels is None or isinstance(given, int) or not isinstance(given, Sequence):
        return  # a single-level neck (an int) or a backbone that does not report channels
    if [int(c) for c in given] != [int(c) for c in channels]:
        raise ConfigError(
            f"neck.in_channels={list(given)} disagree with the {type(backbone).__name__} "
            f"backbone's out_channels={list(channels)}; drop neck.in_channels from the config "
            "(the detector reads them from the backbone) or make them equal"
        )


def frozen_without_weights(backbone: nn.Module) -> str | None:
    """The warning for a backbone that trains from random weights with frozen parts, or None.

    Args:
        backbone: a backbone; one reporting ``frozen_parts() -> list[str]`` (e.g. ``ResNet``)
            is checked, any other passes.
    """
    parts = backbone.frozen_parts() if hasattr(backbone, "frozen_parts") else []
    if not parts:
        return None
    name = type(backbone).__name__
    arch = getattr(backbone, "arch", None)  # torchvision's name, e.g. 'resnet50'
    uri = f"torchvision://{arch}" if arch in TORCHVISION_NAMES else "torchvision://<name>"
    # A backbone whose weights torchvision does not publish may name its own (e.g. HRNet's).
    uri = getattr(backbone, "default_checkpoint", None) or uri
    return (
        f"the {name} backbone starts from random weights (no model.init_cfg.backbone_checkpoint) "
        f"but keeps {'; '.join(parts)} fixed: they will never train. Set "
        f"model.init_cfg=dict(backbone_checkpoint='{uri}') (or a file path), or train from "
        "scratch with model.backbone.frozen_stages=-1 and norm='BN' (norm_eval=False) or 'GN'"
    )


class BaseDetector(nn.Module):
    """Backbone, optional neck, and the shared last step of ``predict``.

    Subclasses add their heads and implement ``loss``, ``predict`` and ``forward`` (the contract
    in docs/architecture.md).

    Args:
        backbone: ``MODELS`` config (or module) of the backbone.
        neck: ``MODELS`` config (or module) of the neck, or None to use backbone maps directly.
            Without ``in_channels`` (or with None) it gets the backbone's ``out_channels``.
        init_cfg: optional ``dict(backbone_checkpoint=CKPT)``: torchvision-format ImageNet
            weights for the backbone (and for any other part that takes them, such as a C4
            head's res5), loaded by :meth:`init_weights`. ``CKPT`` is
            ``'torchvision://resnet50'``, an ``https://`` URL (both cached in torch's hub
            directory, see :mod:`detbox.models.pretrained`) or a file path.

    Attributes:
        cfg: the whole config the detector was loaded from (its test pipeline is what
            ``inference_detector`` runs), or None; set by the loader, never read by the model.
        dataset_meta: ``{"class_names": [...], "cat_ids": [...]}`` indexed by label; empty
            until the builder attaches the dataset's label map.
    """

    def __init__(
        self,
        *,
        backbone: Mapping[str, Any] | nn.Module,
        neck: Mapping[str, Any] | nn.Module | None = None,
        init_cfg: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.cfg: Mapping[str, Any] | None = None
        self.dataset_meta: dict[str, list] = {}
        self.backbone = MODELS.build(backbone)
        neck_path = nested_path(neck) if isinstance(neck, Mapping) else None
        if neck_in_channels_missing(neck):
            neck = with_neck_in_channels(neck, self.backbone)
        elif isinstance(neck, Mapping):
            check_neck_in_channels(neck, self.backbone)
        self.neck = MODELS.build(neck, path=neck_path) if neck is not None else None
        self.init_cfg = self._check_init_cfg(init_cfg or {})

    def _check_init_cfg(self, init_cfg: Mapping[str, Any]) -> dict[str, Any]:
        for key in init_cfg:
            if key not in _INIT_KEYS:
                raise ConfigError(
                    f"{type(self).__name__} init_cfg got an unknown key '{key}'; "
                    f"valid keys: {', '.join(_INIT_KEYS)}"
                )
        checkpoint = init_cfg.get("backbone_checkpoint")
        if checkpoint is not None:
            if not hasattr(self.backbone, "load_torchvision_weights"):
                raise ConfigError(
                    f"init_cfg.backbone_checkpoint: {type(self.backbone).__name__} cannot load "
                    "torchvision weights"
                )
            checkpoint_url(checkpoint)  # an unknown torchvision:// name fails here, not later
        return dict(init_cfg)

    def init_weights(self) -> str | None:
        """Load ``init_cfg``'s pretrained weights; called once before training from scratch.

        Construction never reads checkpoints, so building a model to load a trained checkpoint
        into (inference, export, ``--load-from``) needs neither the file nor the network. The
        backbone gets the weights first, then every other direct part that takes torchvision
        weights (``load_torchvision_weights``, e.g. a C4 head's res5).

        Without a checkpoint, a backbone with its own ``init_weights()`` (a ``TimmBackbone``
        with ``pretrained_file``, a ``TorchvisionBackbone`` with ``weights_file``) loads its
        weights; with none at all, warns when the backbone keeps parts frozen
        (``frozen_parts()``): they would stay at their random initialization for the whole
        training.

        Returns:
            A line for the training log saying where the weights came from, or None.
        """
        checkpoint = self.init_cfg.get("backbone_checkpoint")
        if checkpoint is None and hasattr(self.backbone, "init_weights"):
            loaded = self.backbone.init_weights()  # a backbone naming its own weights file
            if loaded is not None:
                return loaded
        if checkpoint is None:
            message = frozen_without_weights(self.backbone)
            if message:
                warnings.warn(message, UserWarning, stacklevel=2)
            return None
        self.backbone.load_torchvision_weights(checkpoint)
        for name, module in self.named_children():
            if name != "backbone" and hasattr(module, "load_torchvision_weights"):
                module.load_torchvision_weights(checkpoint)
        return f"pretrained backbone weights from {checkpoint}"

    def extract_feat(self, images: Tensor) -> list[Tensor]:
        """(B, 3, H, W) normalized images -> multi-scale maps, finest first."""
        feats = self.backbone(images)
        return list(self.neck(feats)) if self.neck is not None else list(feats)

    def loss(self, batch: ImageBatch) -> dict[str, Tensor]:
        raise NotImplementedError

    def predict(self, batch: ImageBatch) -> list[Instances]:
        raise NotImplementedError

    def forward(self, images: Tensor) -> Any:
        raise NotImplementedError

    def postprocess(
        self, results: Sequence[Instances], samples: Sequence[DetSample]
    ) -> list[Instances]:
        """Head results in ``img_shape`` coordinates -> final results in original coordinates."""
        return [
            self.postprocess_masks(rescale_to_original(result, sample), sample)
            for result, sample in zip(results, samples)
        ]

    def postprocess_masks(self, instances: Instances, sample: DetSample) -> Instances:
        """Hook for detectors with masks: paste ``instances.masks`` at ``sample.ori_shape``.

        Called with boxes already in original coordinates; masks are as the mask head left them,
        in the transformed image's orientation (undo ``sample.flip`` on them too). Box-only
        detectors return ``instances`` unchanged.
        """
        return instances
