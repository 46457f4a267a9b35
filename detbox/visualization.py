"""Drawing detections on images: boxes, class names, scores and semi-transparent masks."""

from __future__ import annotations

import colorsys
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont
from torch import Tensor

from detbox.structures import DetSample, Instances

__all__ = [
    "class_color", "denormalize", "draw_instances", "ground_truth", "save_visualization",
]


def class_color(label: int) -> tuple[int, int, int]:
    """A stable, well-separated colour per class (golden-ratio hue steps)."""
    hue = (label * 0.618033988749895) % 1.0
    r, g, b = colorsys.hsv_to_rgb(hue, 0.75, 1.0)
    return int(r * 255), int(g * 255), int(b * 255)


def draw_instances(
    image: np.ndarray | Image.Image,
    instances: Instances,
    class_names: Sequence[str],
    score_thr: float = 0.3,
    mask_alpha: float = 0.45,
) -> Image.Image:
    """Return a copy of ``image`` (RGB, original size) with ``instances`` drawn on it."""
    canvas = image.convert("RGB") if isinstance(image, Image.Image) else Image.fromarray(image)
    keep = instances.scores >= score_thr if instances.scores is not None else slice(None)
    shown = instances[keep]
    pixels = np.asarray(canvas, dtype=np.float32).copy()
    if shown.masks is not None:
        for mask, label in zip(shown.masks.numpy().astype(bool), shown.labels.tolist()):
            color = np.array(class_color(label), dtype=np.float32)
            pixels[mask] = pixels[mask] * (1 - mask_alpha) + color * mask_alpha
    canvas = Image.fromarray(pixels.clip(0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default()
    scores = shown.scores.tolist() if shown.scores is not None else [None] * len(shown)
    for box, label, score in zip(shown.boxes.tolist(), shown.labels.tolist(), scores):
        color = class_color(label)
        draw.rectangle(box, outline=color, width=2)
        name = class_names[label] if label < len(class_names) else str(label)
        text = name if score is None else f"{name} {score:.2f}"
        left, top, right, bottom = draw.textbbox((box[0], box[1]), text, font=font)
        top_y = max(0, box[1] - (bottom - top) - 2)
        label_box = (box[0], top_y, box[0] + right - left + 4, top_y + bottom - top + 2)
        draw.rectangle(label_box, fill=color)
        draw.text((box[0] + 2, top_y), text, fill=(0, 0, 0), font=font)
    return canvas


def save_visualization(
    image: np.ndarray | Image.Image,
    instances: Instances,
    class_names: Sequence[str],
    out_file: str | os.PathLike,
    score_thr: float = 0.3,
) -> None:
    """Draw ``instances`` on ``image`` and save it (format from the file extension)."""
    os.makedirs(os.path.dirname(os.path.abspath(out_file)), exist_ok=True)
    draw_instances(image, instances, class_names, score_thr).save(out_file)


def denormalize(image: Tensor, img_norm: Mapping[str, Any] | None) -> np.ndarray:
    """(3, H, W) image as the pipeline left it -> (H, W, 3) uint8 RGB for display.

    ``img_norm`` is what ``Normalize`` recorded (``mean``/``std`` on the 0-255 scale); without
    it the image is taken to be on the 0-255 scale already.
    """
    image = image.detach().float().cpu()
    if img_norm:
        std = torch.tensor(img_norm["std"], dtype=image.dtype).view(3, 1, 1)
        mean = torch.tensor(img_norm["mean"], dtype=image.dtype).view(3, 1, 1)
        image = image * std + mean
    return image.clamp(0, 255).round().to(torch.uint8).permute(1, 2, 0).numpy()


def ground_truth(sample: DetSample, num_classes: int) -> Instances:
    """The sample's objects plus its ignored boxes as extra label ``num_classes``."""
    gt = sample.gt_or_empty()
    ignored = sample.ignored_boxes.reshape(-1, 4).float()
    if len(ignored) == 0:
        return gt
    masks = None
    if gt.masks is not None:
        masks = torch.cat([gt.masks, gt.masks.new_zeros((len(ignored), *gt.masks.shape[1:]))])
    labels = torch.full((len(ignored),), num_classes, dtype=torch.int64)
    return Instances(boxes=torch.cat([gt.boxes.float(), ignored]),
                     labels=torch.cat([gt.labels, labels]), masks=masks)
