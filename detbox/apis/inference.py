"""The Python inference API: ``init_detector`` and ``inference_detector``."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from detbox.apis.build import build_detector, fill_num_classes
from detbox.config import ConfigDict, apply_options, load_config
from detbox.errors import CheckpointError, ConfigError
from detbox.structures import Instances
from detbox.utils.device import resolve_device

__all__ = [
    "ImageInput", "inference_detector", "init_detector", "load_detector", "prepare_batch",
    "show_result",
]

ImageInput = str | os.PathLike | np.ndarray


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
) -> nn.Module:
    """Build a detector from a config file (or loaded config) and a checkpoint, ready to infer.

    ``tta``: True wraps it for test-time augmentation (``detbox.apis.tta``), False never does,
    None does when the config has a ``tta`` section.
    """
    from detbox.apis.tta import maybe_wrap_for_tta

    cfg = config if isinstance(config, Mapping) else load_config(config)
    cfg = ConfigDict(cfg)
    if cfg_options:
        apply_options(cfg, cfg_options)
    device = device if isinstance(device, torch.device) else resolve_device(device)
    return maybe_wrap_for_tta(load_detector(cfg, checkpoint, device), cfg, tta)


def _test_pipeline(cfg: ConfigDict):
    from detbox.data.transforms import Compose

    section = cfg.get("test_dataloader") or cfg.get("val_dataloader")
    steps = cfg.get("test_pipeline") or (section or {}).get("dataset", {}).get("pipeline")
    if not steps:
        raise ConfigError("the config has no test_pipeline (or test_dataloader.dataset.pipeline)")
    steps = [s for s in steps if s.get("type") not in ("LoadAnnotations", "LoadImage")]
    return Compose(steps)


def _load(image: ImageInput, index: int) -> dict[str, Any]:
    from detbox.data.transforms import LoadImage

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


def prepare_batch(cfg: ConfigDict, images: Sequence[ImageInput], first_index: int = 0):
    """Load ``images`` (paths or RGB arrays) and run the config's test pipeline on them.

    Returns:
        An ``ImageBatch`` on the CPU, as the model's ``predict`` takes it; image ids count from
        ``first_index``.
    """
    from detbox.data.collate import collate

    pipeline = _test_pipeline(cfg)
    return collate([pipeline(_load(img, first_index + i)) for i, img in enumerate(images)])


@torch.no_grad()
def inference_detector(
    model: nn.Module, images: ImageInput | Sequence[ImageInput], batch_size: int = 4
) -> Instances | list[Instances]:
    """Detect objects in one image (path or RGB array) or a list of them.

    Returns ``Instances`` in original image coordinates (a list for a list input), with
    ``labels`` indexing ``model.dataset_meta['class_names']``.
    """
    single = not isinstance(images, (list, tuple))
    items = [images] if single else list(images)
    device = next(model.parameters()).device
    model.eval()
    outputs: list[Instances] = []
    for start in range(0, len(items), batch_size):
        batch = prepare_batch(model.cfg, items[start:start + batch_size], start)
        outputs.extend(p.to("cpu") for p in model.predict(batch.to(device)))
    return outputs[0] if single else outputs


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
        img: the image the result belongs to: a path or an (H, W, 3) uint8 RGB array.
        result: ``Instances`` in that image's coordinates (``inference_detector``'s output).
        class_names: names indexed by label; taken from ``model.dataset_meta`` when None.
        model: the detector, only to look up its class names.
        score_thr: detections scoring below this are not drawn.
        out_file: also save the picture here (format from the extension).
    """
    from PIL import Image

    from detbox.visualization import draw_instances

    if class_names is None:
        meta = getattr(model, "dataset_meta", None) or {}
        class_names = meta.get("class_names") or []
    if isinstance(img, np.ndarray):
        picture = draw_instances(img, result, class_names, score_thr)
    else:
        with Image.open(img) as image:
            picture = draw_instances(image, result, class_names, score_thr)
    if out_file is not None:
        Path(out_file).parent.mkdir(parents=True, exist_ok=True)
        picture.save(out_file)
    return picture
