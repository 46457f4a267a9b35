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
    "class_color", "denormalize", "draw_instances", "ground_truth", "label_font",
    "save_visualization",
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
    min_side: int = 0,
) -> Image.Image:
    """Return a copy of ``image`` (RGB) with ``instances`` drawn on it.

    Args:
        image: (H, W, 3) uint8 RGB array or a PIL image; ``instances`` are in its coordinates.
        instances: ``boxes`` (N, 4) xyxy, ``labels`` (N,), optional ``scores`` and ``masks``.
        class_names: name per label; a label past the end is drawn as its number.
        score_thr: instances scoring below it are left out.
        mask_alpha: opacity of the mask colour.
        min_side: when the shorter side of ``image`` is below it, the picture is enlarged to
            it first (boxes and masks with it), so that labels of small images stay legible and
            leave the objects visible. 0 keeps the original size.
    """
    canvas = image.convert("RGB") if isinstance(image, Image.Image) else Image.fromarray(image)
    keep = instances.scores >= score_thr if instances.scores is not None else slice(None)
    shown = instances[keep]
    scale = max(1.0, min_side / min(canvas.size)) if min_side else 1.0
    pixels = np.asarray(canvas, dtype=np.float32).copy()
    if shown.masks is not None:
        for mask, label in zip(shown.masks.numpy().astype(bool), shown.labels.tolist()):
            color = np.array(class_color(label), dtype=np.float32)
            pixels[mask] = pixels[mask] * (1 - mask_alpha) + color * mask_alpha
    canvas = Image.fromarray(pixels.clip(0, 255).astype(np.uint8))
    if scale > 1.0:
        size = (round(canvas.width * scale), round(canvas.height * scale))
        canvas = canvas.resize(size, Image.Resampling.BICUBIC)
    _draw_boxes(canvas, shown, class_names, scale)
    return canvas


def label_font(short_side: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    """Pillow's built-in font at a size that reads well on a picture of that short side."""
    size = max(12, round(short_side / 28))
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has one fixed-size bitmap font
        return ImageFont.load_default()


def _draw_boxes(canvas: Image.Image, shown: Instances, class_names: Sequence[str],
                scale: float) -> None:
    """Boxes (scaled by ``scale``) with a filled name-and-score tag above each."""
    draw = ImageDraw.Draw(canvas)
    font = label_font(min(canvas.size))
    width = max(2, round(min(canvas.size) / 256))
    scores = shown.scores.tolist() if shown.scores is not None else [None] * len(shown)
    for box, label, score in zip(shown.boxes.tolist(), shown.labels.tolist(), scores):
        box = [value * scale for value in box]
        color = class_color(label)
        draw.rectangle(box, outline=color, width=width)
        name = class_names[label] if label < len(class_names) else str(label)
        text = name if score is None else f"{name} {score:.2f}"
        left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
        tag_h = bottom - top + 4
        top_y = box[1] - tag_h if box[1] >= tag_h else box[1]
        draw.rectangle((box[0], top_y, box[0] + right - left + 6, top_y + tag_h), fill=color)
        draw.text((box[0] + 3, top_y + 2 - top), text, fill=(0, 0, 0), font=font)


def save_visualization(
    image: np.ndarray | Image.Image,
    instances: Instances,
    class_names: Sequence[str],
    out_file: str | os.PathLike,
    score_thr: float = 0.3,
    min_side: int = 512,
) -> None:
    """Draw ``instances`` on ``image`` and save it (format from the file extension).

    Pictures saved for people to look at are enlarged to ``min_side`` on the short side when
    smaller (see :func:`draw_instances`).
    """
    os.makedirs(os.path.dirname(os.path.abspath(out_file)), exist_ok=True)
    draw_instances(image, instances, class_names, score_thr, min_side=min_side).save(out_file)


def denormalize(image: Tensor, img_norm: Mapping[str, Any] | None) -> np.ndarray:
    """(3, H, W) image as the pipeline left it -> (H, W, 3) uint8 RGB for display.

    ``img_norm`` is what ``Normalize`` recorded (``mean``/``std`` on the 0-255 scale, and
    ``to_rgb=False`` when the network saw BGR); without it the image is taken to be on the
    0-255 scale already.
    """
    image = image.detach().float().cpu()
    if img_norm:
        std = torch.tensor(img_norm["std"], dtype=image.dtype).view(3, 1, 1)
        mean = torch.tensor(img_norm["mean"], dtype=image.dtype).view(3, 1, 1)
        image = image * std + mean
        if not img_norm.get("to_rgb", True):
            image = image.flip(0)
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


def picture_grid(rows: Sequence[Sequence[Image.Image]], titles: Sequence[str] = (),
                 tile: int = 384) -> Image.Image:
    """Tile pictures into one image: ``rows[r][c]`` fitted into a ``tile`` x ``tile`` cell.

    ``titles`` (one per column) are written above the columns, e.g. "prediction" and
    "ground truth" for an overview of a model's results.
    """
    font = label_font(tile)
    head = round(font.size * 1.6) if titles and hasattr(font, "size") else (20 if titles else 0)
    columns = max((len(row) for row in rows), default=0)
    grid = Image.new("RGB", (columns * tile, head + len(rows) * tile), (255, 255, 255))
    draw = ImageDraw.Draw(grid)
    for col, title in enumerate(titles):
        draw.text((col * tile + 6, 4), title, fill=(0, 0, 0), font=font)
    for r, row in enumerate(rows):
        for c, picture in enumerate(row):
            fitted = picture.copy()
            fitted.thumbnail((tile - 4, tile - 4), Image.Resampling.BICUBIC)
            if max(fitted.size) < tile - 4:
                factor = (tile - 4) / max(fitted.size)
                fitted = fitted.resize((round(fitted.width * factor),
                                        round(fitted.height * factor)), Image.Resampling.BICUBIC)
            grid.paste(fitted, (c * tile + 2, head + r * tile + 2))
    return grid
