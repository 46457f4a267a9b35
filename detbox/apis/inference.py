"""The Python inference API: ``init_detector``, ``inference_detector`` (detections only) and
``inference_with_images`` (detections with the upright image), ``show_result``.

Images are loaded and batched by ``detbox.data.inference`` (``prepare_batch`` and
``ImageInput`` are re-exported here for existing callers).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from detbox.apis.build import build_detector, fill_num_classes
from detbox.config import ConfigDict, apply_options, load_config
from detbox.data.collate import collate
from detbox.data.inference import (
    ImageInput,
    build_test_pipeline,
    load_image,
    prepare_batch,
    read_rgb,
    upright_array,
)
from detbox.errors import CheckpointError, ConfigError
from detbox.models.inference_mode import prepare_for_inference
from detbox.structures import Instances
from detbox.utils.device import resolve_device

__all__ = [
    "ImageInput", "Prediction", "inference_detector", "inference_with_images", "init_detector",
    "load_detector", "prepare_batch", "show_result",
]


def _label_map(checkpoint: Mapping[str, Any], dataset, path: str) -> tuple[list[str], list[int]]:
    meta = checkpoint.get("meta") or {}
    names, cat_ids = meta.get("class_names"), meta.get("cat_ids")
    if names is None:
        if dataset is None:
            raise CheckpointError(
                f"{path} carries no class names (not a detbox checkpoint?); give a config whose "
                "test_dataloader names the annotation file the model was trained on"
            )
        names, cat_ids = list(dataset.class_names), list(dataset.cat_ids)
    if dataset is not None and list(dataset.class_names) != list(names):
        raise ConfigError(
            f"{path} was trained on classes {names}, but {dataset.ann_file} has "
            f"{list(dataset.class_names)}; test on data with the model's classes (or set "
            "class_names in the dataset config)"
        )
    return list(names), list(cat_ids if cat_ids is not None else range(1, len(names) + 1))


def load_detector(
    cfg: ConfigDict, checkpoint: str | os.PathLike, device: torch.device, dataset=None
) -> nn.Module:
    """Build ``cfg.model`` for the checkpoint's classes and load its weights (all must fit)."""
    from detbox.engine import extract_state_dict, load_checkpoint

    state = load_checkpoint(checkpoint, map_location="cpu")
    class_names, cat_ids = _label_map(state, dataset, str(checkpoint))
    fill_num_classes(cfg, class_names, source=f"checkpoint {checkpoint}")
    model = build_detector(cfg.model, class_names, cat_ids)
    missing, unexpected = model.load_state_dict(extract_state_dict(state), strict=False)
    if missing or unexpected:
        raise CheckpointError(
            f"{checkpoint} does not fit the model of the config: missing keys "
            f"{missing[:5]}{'...' if len(missing) > 5 else ''}, unexpected keys "
            f"{unexpected[:5]}{'...' if len(unexpected) > 5 else ''}; use the config it was "
            "trained with (its work dir has config.json)"
        )
    model.cfg = cfg
    return model.to(device).eval()


def init_detector(
    config: str | os.PathLike | ConfigDict,
    checkpoint: str | os.PathLike,
    device: str | torch.device | None = None,
    cfg_options: Mapping[str, Any] | None = None,
    tta: bool | None = None,
    *,
    fast: bool = True,
) -> nn.Module:
    """Build a detector from a config file (or loaded config) and a checkpoint, ready to infer.

    ``fast``: put the model into the inference fast path
    (``detbox.models.inference_mode.prepare_for_inference``: folded BN, channels-last, fused
    conv+ReLU); False gives the plain model.

    ``tta``: True wraps it for test-time augmentation (``detbox.apis.tta``), False never does,
    None does when the config has a ``tta`` section.
    """
    from detbox.apis.tta import maybe_wrap_for_tta

    cfg = config if isinstance(config, Mapping) else load_config(config)
    cfg = ConfigDict(cfg)
    if cfg_options:
        apply_options(cfg, cfg_options)
    device = device if isinstance(device, torch.device) else resolve_device(device)
    model = load_detector(cfg, checkpoint, device)
    if fast:
        prepare_for_inference(model)
    return maybe_wrap_for_tta(model, cfg, tta)


@dataclass(frozen=True)
class Prediction:
    """One image's detections with the upright image the model saw.

    Attributes:
        instances: detections in original image coordinates (``inference_detector``'s output).
        image: (H, W, 3) uint8 RGB pixels the boxes refer to: a file decoded with its EXIF
            orientation applied, or the array that was given.
    """

    instances: Instances
    image: np.ndarray

    @property
    def ori_shape(self) -> tuple[int, int]:
        """(height, width) of the upright image."""
        return int(self.image.shape[0]), int(self.image.shape[1])


def _predict(
    model: nn.Module, items: list[ImageInput], batch_size: int, keep_images: bool
) -> Iterator[tuple[Instances, np.ndarray | None]]:
    """``(detections on the CPU, upright image or None)`` per item, ``batch_size`` at a time."""
    if getattr(model, "cfg", None) is None:
        raise ConfigError("the model has no cfg (its test pipeline); load it with init_detector")
    device = next(model.parameters()).device
    model.eval()
    pipeline = build_test_pipeline(model.cfg)
    for start in range(0, len(items), batch_size):
        chunk = items[start:start + batch_size]
        records = [load_image(img, start + i) for i, img in enumerate(chunk)]
        pictures: list[np.ndarray | None] = [None] * len(chunk)
        if keep_images:
            pictures = [img if isinstance(img, np.ndarray) else upright_array(record)
                        for img, record in zip(chunk, records)]
        batch = collate([pipeline(record) for record in records])
        for instances, picture in zip(model.predict(batch.to(device)), pictures, strict=True):
            yield instances.to("cpu"), picture


@torch.no_grad()
def inference_detector(
    model: nn.Module, images: ImageInput | Sequence[ImageInput], batch_size: int = 4
) -> Instances | list[Instances]:
    """Detect objects in one image (path or RGB array) or a list of them.

    Returns ``Instances`` in original image coordinates (a list for a list input), with
    ``labels`` indexing ``model.dataset_meta['class_names']``. A file is read upright (its
    EXIF orientation applied); ``inference_with_images`` also returns those pixels.
    """
    single = not isinstance(images, (list, tuple))
    items = [images] if single else list(images)
    outputs = [instances for instances, _ in _predict(model, items, batch_size, False)]
    return outputs[0] if single else outputs


@torch.no_grad()
def inference_with_images(
    model: nn.Module, images: Sequence[ImageInput], batch_size: int = 4
) -> list[Prediction]:
    """Like ``inference_detector`` on a list, with each image's upright pixels kept.

    What drawing or reporting image sizes needs, so that no file is read a second time (and
    a photo's size and picture follow the orientation the model saw). All images are held in
    memory: call it batch by batch for long lists.
    """
    return [Prediction(instances, picture)
            for instances, picture in _predict(model, list(images), batch_size, True)]


def show_result(
    img: ImageInput,
    result: Instances,
    class_names: Sequence[str] | None = None,
    model: nn.Module | None = None,
    score_thr: float = 0.3,
    out_file: str | os.PathLike | None = None,
):
    """Draw ``result`` (boxes, names, scores, masks) on ``img`` and return the PIL image.

    Args:
        img: the image the result belongs to: a path (read upright, by its EXIF orientation,
            as ``inference_detector`` reads it) or an (H, W, 3) uint8 RGB array.
        result: ``Instances`` in that image's coordinates (``inference_detector``'s output).
        class_names: names indexed by label; taken from ``model.dataset_meta`` when None.
        model: the detector, only to look up its class names.
        score_thr: detections scoring below this are not drawn.
        out_file: also save the picture here (format from the extension).
    """
    from detbox.visualization import draw_instances

    if class_names is None:
        meta = getattr(model, "dataset_meta", None) or {}
        class_names = meta.get("class_names") or []
    picture = draw_instances(read_rgb(img), result, class_names, score_thr)
    if out_file is not None:
        Path(out_file).parent.mkdir(parents=True, exist_ok=True)
        picture.save(out_file)
    return picture
