"""Drawing detections on images: boxes, class names, scores and semi-transparent masks."""

from __future__ import annotations

import colorsys
import os
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from detbox.structures import Instances

__all__ = ["class_color", "draw_instances", "save_visualization"]


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
