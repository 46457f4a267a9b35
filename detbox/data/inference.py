"""Images for inference: a path or an RGB array in, the config's test pipeline, a batch out.

The one place where inference reads an image file. The decode is the dataset's own
(``LoadImage``: EXIF orientation applied, any Pillow mode to RGB), so the size a prediction is
reported in and the picture it is drawn on are the ones the model saw.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from detbox.data.collate import collate
from detbox.data.transforms import Compose, LoadImage
from detbox.errors import ConfigError
from detbox.structures import ImageBatch

__all__ = [
    "ImageInput",
    "build_test_pipeline",
    "load_image",
    "prepare_batch",
    "read_rgb",
    "upright_array",
]

ImageInput = str | os.PathLike | np.ndarray


def build_test_pipeline(cfg: Mapping[str, Any]) -> Compose:
    """The config's test pipeline without its loading steps (``load_image`` does that).

    Read from ``test_pipeline``, else from ``test_dataloader`` (or ``val_dataloader``)
    ``.dataset.pipeline``.

    Raises:
        ConfigError: the config has neither.
    """
    section = cfg.get("test_dataloader") or cfg.get("val_dataloader")
    steps = cfg.get("test_pipeline") or (section or {}).get("dataset", {}).get("pipeline")
    if not steps:
        raise ConfigError("the config has no test_pipeline (or test_dataloader.dataset.pipeline)")
    steps = [s for s in steps if s.get("type") not in ("LoadAnnotations", "LoadImage")]
    return Compose(steps)


def load_image(image: ImageInput, index: int = 0) -> dict[str, Any]:
    """The pipeline record ``LoadImage`` makes, for a path or an (H, W, 3) uint8 RGB array.

    Args:
        image: an image file (decoded upright, by its EXIF orientation) or an RGB array.
        index: the ``image_id`` of the record (arrays are named ``<array INDEX>``).

    Returns:
        ``img`` (3, H, W) uint8 upright, ``ori_shape`` and ``img_shape`` (H, W),
        ``scale_factor``, ``flip``, ``img_path``, ``file_name`` and ``image_id``.

    Raises:
        ConfigError: an array of another shape or dtype.
        DatasetError: a file that is missing or cannot be decoded.
    """
    if isinstance(image, np.ndarray):
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ConfigError(
                f"image arrays must be (H, W, 3) uint8 RGB; got {image.shape} {image.dtype}"
            )
        height, width = image.shape[:2]
        return {
            "img": torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).contiguous(),
            "img_path": f"<array {index}>", "file_name": f"<array {index}>", "image_id": index,
            "ori_shape": (height, width), "img_shape": (height, width),
            "scale_factor": (1.0, 1.0), "flip": None,
        }
    path = str(image)
    return LoadImage()({"img_path": path, "file_name": Path(path).name, "image_id": index})


def upright_array(record: Mapping[str, Any]) -> np.ndarray:
    """(H, W, 3) uint8 RGB pixels of a ``load_image`` record, before any pipeline step."""
    return np.ascontiguousarray(record["img"].permute(1, 2, 0).numpy())


def read_rgb(image: ImageInput) -> np.ndarray:
    """(H, W, 3) uint8 RGB pixels of a path (upright, as the model sees it) or an array."""
    if isinstance(image, np.ndarray):
        load_image(image)  # checks shape and dtype
        return image
    return upright_array(load_image(image))


def prepare_batch(
    cfg: Mapping[str, Any], images: Sequence[ImageInput], first_index: int = 0
) -> ImageBatch:
    """Load ``images`` (paths or RGB arrays) and run the config's test pipeline on them.

    Returns:
        An ``ImageBatch`` on the CPU, as the model's ``predict`` takes it; image ids count from
        ``first_index``.
    """
    pipeline = build_test_pipeline(cfg)
    return collate([pipeline(load_image(img, first_index + i)) for i, img in enumerate(images)])
