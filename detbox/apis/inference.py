"""The Python inference API: ``init_detector``, ``inference_detector`` (detections only) and
``inference_with_images`` (detections with the upright image), ``show_result``.

Images are loaded and batched by ``detbox.data.inference`` (``prepare_batch`` and
``ImageInput`` are re-exported here for existing callers).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

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
from detbox.errors import CheckpointError, ConfigError, ImageReadError
from detbox.models.inference_mode import prepare_for_inference
from detbox.structures import Instances
from detbox.utils.device import resolve_device

__all__ = [
    "ImageInput", "ImageReadError", "Prediction", "inference_detector", "inference_with_images",
    "init_detector", "iter_predictions", "load_detector", "prepare_batch", "show_result",
]

logger = logging.getLogger("detbox.inference")

# What a file that cannot be read does in ``inference_detector``: raise, or give None.
OnError = Literal["raise", "skip"]


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
    """Build ``cfg.model`` for the checkpoint's classes and load its weights (all must fit).

    Raises:
        CheckpointError: unreadable, or its weights do not fit the config's model (one line
            naming both files, the first mismatched keys with both shapes, and the fix).
        ConfigError: the config fixes another number of classes than the checkpoint has.
    """
    from detbox.engine import extract_state_dict, load_checkpoint
    from detbox.engine.checkpoint_fit import CONFIG_HINT, load_exact_weights

    state = load_checkpoint(checkpoint, map_location="cpu")
    config = str(cfg.get("_filename", "(given in code)"))
    class_names, cat_ids = _label_map(state, dataset, str(checkpoint))
    try:
        fill_num_classes(cfg, class_names, source=f"checkpoint {checkpoint}")
    except ConfigError as exc:
        raise ConfigError(
            f"{exc} The checkpoint was trained on {len(class_names)} classes and config "
            f"{config} sets another number: test with the config it was trained with "
            f"({CONFIG_HINT}); to fine-tune it on new classes, train with --load-from "
            f"{checkpoint}"
        ) from None
    model = build_detector(cfg.model, class_names, cat_ids)
    load_exact_weights(model, extract_state_dict(state), checkpoint=str(checkpoint),
                       config=config)
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
            orientation applied, or the array that was given; None from ``iter_predictions``
            without ``keep_images``.
    """

    instances: Instances
    image: np.ndarray | None

    @property
    def ori_shape(self) -> tuple[int, int]:
        """(height, width) of the upright image (kept with ``keep_images``)."""
        return int(self.image.shape[0]), int(self.image.shape[1])


def iter_predictions(
    model: nn.Module, images: Sequence[ImageInput], batch_size: int = 4,
    keep_images: bool = False,
) -> Iterator[Prediction | ImageReadError]:
    """A ``Prediction`` per image, in order, or the ``ImageReadError`` of a file not read.

    Images are read and detected ``batch_size`` at a time, so a long list streams through;
    an unreadable file takes no place in its batch. ``keep_images`` keeps each image's upright
    pixels in ``Prediction.image`` (else it is None).
    """
    if getattr(model, "cfg", None) is None:
        raise ConfigError("the model has no cfg (its test pipeline); load it with init_detector")
    device = next(model.parameters()).device
    model.eval()
    pipeline = build_test_pipeline(model.cfg)
    for start in range(0, len(images), batch_size):
        chunk = images[start:start + batch_size]
        loaded: list[dict[str, Any] | ImageReadError] = []
        for i, img in enumerate(chunk):
            try:
                loaded.append(load_image(img, start + i))
            except ImageReadError as exc:
                loaded.append(exc)
        pictures = [None if isinstance(r, ImageReadError) or not keep_images
                    else img if isinstance(img, np.ndarray) else upright_array(r)
                    for img, r in zip(chunk, loaded)]  # before the pipeline changes records
        records = [r for r in loaded if not isinstance(r, ImageReadError)]
        with torch.no_grad():
            outputs = (iter(model.predict(collate([pipeline(r) for r in records]).to(device)))
                       if records else iter(()))
        for record, picture in zip(loaded, pictures):
            if isinstance(record, ImageReadError):
                yield record
            else:
                yield Prediction(next(outputs).to("cpu"), picture)


def _collect(
    model: nn.Module, items: list[ImageInput], batch_size: int, keep_images: bool,
    on_error: OnError,
) -> list[Prediction | None]:
    if on_error not in ("raise", "skip"):
        raise ConfigError(f"on_error must be 'raise' or 'skip', not {on_error!r}")
    results: list[Prediction | None] = []
    for result in iter_predictions(model, items, batch_size, keep_images):
        if isinstance(result, ImageReadError):
            if on_error == "raise":
                raise result
            logger.warning(f"skipped: {result}")
            result = None
        results.append(result)
    return results


def inference_detector(
    model: nn.Module, images: ImageInput | Sequence[ImageInput], batch_size: int = 4,
    on_error: OnError = "raise",
) -> Instances | None | list[Instances | None]:
    """Detect objects in one image (path or RGB array) or a list of them.

    Returns ``Instances`` in original image coordinates (a list for a list input), with
    ``labels`` indexing ``model.dataset_meta['class_names']``. A file is read upright (its
    EXIF orientation applied); ``inference_with_images`` also returns those pixels.

    Args:
        on_error: what a file that cannot be read does: ``"raise"`` (default) raises its
            ``ImageReadError`` (``.path``, ``.reason``); ``"skip"`` logs a warning and puts
            ``None`` in its place, so the other images are still detected and the result
            stays aligned with the input.

    Raises:
        ImageReadError: an unreadable file, with ``on_error="raise"``.
    """
    single = not isinstance(images, (list, tuple))
    items = [images] if single else list(images)
    outputs = [None if p is None else p.instances
               for p in _collect(model, items, batch_size, False, on_error)]
    return outputs[0] if single else outputs


def inference_with_images(
    model: nn.Module, images: Sequence[ImageInput], batch_size: int = 4,
    on_error: OnError = "raise",
) -> list[Prediction | None]:
    """Like ``inference_detector`` on a list, with each image's upright pixels kept.

    What drawing or reporting image sizes needs, so that no file is read a second time (and
    a photo's size and picture follow the orientation the model saw). All images are held in
    memory: call it batch by batch for long lists, or use ``iter_predictions``. ``on_error``
    is as for ``inference_detector`` (``None`` for a skipped file).
    """
    return _collect(model, list(images), batch_size, True, on_error)


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
