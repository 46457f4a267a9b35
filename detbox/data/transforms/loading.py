"""Transforms that read an image file and turn a dataset record's annotations into tensors."""

from __future__ import annotations

import os
import warnings
from typing import Any

import numpy as np
import pycocotools.mask as mask_utils
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from detbox.data.transforms.geometric import drop_degenerate_boxes
from detbox.errors import ConfigError, DatasetError, ImageReadError
from detbox.registry import TRANSFORMS

__all__ = [
    "LoadAnnotations",
    "LoadImage",
    "decode_rles",
    "image_read_error",
    "pil_to_rgb_array",
    "segmentation_to_rle",
]


@TRANSFORMS.register
class LoadImage:
    """Read ``results['img_path']`` with Pillow as an RGB ``uint8`` tensor.

    The EXIF orientation is applied first, so a photo shows the way a viewer shows it. Any
    Pillow mode loads: greyscale and palette images become three equal channels, an alpha
    channel is dropped, and 16-bit, 32-bit integer and float images are scaled to 0-255 (see
    ``pil_to_rgb_array``). When the record carries the size the annotation file expects
    (``height``/``width``), a different decoded size is an error: the annotations would not line
    up with the pixels.

    Adds ``img`` (3, H, W) uint8, ``ori_shape`` and ``img_shape`` (H, W), ``scale_factor``
    ``(1.0, 1.0)`` and ``flip`` ``None``.
    """

    def __call__(self, results: dict[str, Any]) -> dict[str, Any]:
        path = results["img_path"]
        try:
            with Image.open(path) as pil:
                array = pil_to_rgb_array(ImageOps.exif_transpose(pil))
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
            raise image_read_error(path, exc, in_dataset="ann_file" in results) from None
        height, width = array.shape[:2]
        expected = (results.get("height"), results.get("width"))
        if None not in expected and expected != (height, width):
            raise DatasetError(
                f"{path}: image is {width}x{height} pixels but {results.get('ann_file', 'the')} "
                f"annotation file says {expected[1]}x{expected[0]}; fix its width/height entry"
            )
        results["img"] = torch.from_numpy(array).permute(2, 0, 1).contiguous()
        results["ori_shape"] = (height, width)
        results["img_shape"] = (height, width)
        results["scale_factor"] = (1.0, 1.0)
        results["flip"] = None
        return results


def image_read_error(path: str, exc: BaseException, in_dataset: bool = False) -> ImageReadError:
    """The ``ImageReadError`` for ``exc`` raised while decoding ``path``, its reason classified.

    ``in_dataset``: the file comes from an annotation file, so the advice names it.
    """
    reason = _read_failure_reason(path, exc)
    if in_dataset:
        advice = ("check img_dir and the file_name in the annotation file" if reason == "missing"
                  else "replace the file or remove it from the annotation file")
    else:
        advice = "check the path" if reason == "missing" else "replace or remove the file"
    if reason == "missing":
        return ImageReadError(path, reason, f"{path}: image file not found; {advice}")
    detail = "" if reason in ("empty file", "not an image", "permission denied") else f": {exc}"
    return ImageReadError(path, reason, f"{path}: cannot read image ({reason}{detail}); {advice}")


def _read_failure_reason(path: str, exc: BaseException) -> str:
    if isinstance(exc, FileNotFoundError):
        return "missing"
    if isinstance(exc, PermissionError):
        return "permission denied"
    if isinstance(exc, Image.DecompressionBombError):
        return "too large"
    if isinstance(exc, UnidentifiedImageError):
        try:
            return "empty file" if os.path.getsize(path) == 0 else "not an image"
        except OSError:
            return "not an image"
    text = str(exc).lower()
    if "truncated" in text:
        return "truncated"
    if isinstance(exc, ValueError) and "mode" in text:
        return "unsupported mode"
    return "corrupt"


_HIGH_DEPTH_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")


def pil_to_rgb_array(pil: Image.Image) -> np.ndarray:
    """(H, W, 3) uint8 RGB pixels of a Pillow image of any mode.

    Pillow's own ``convert('RGB')`` clips 16-bit values at 255, which turns most of a 16-bit
    image white; here they are scaled instead: 16-bit by ``255 / 65535``, 32-bit integers as
    16-bit when they exceed 255, floats from ``[0, 1]`` when their maximum is at most 1.
    """
    if pil.mode not in _HIGH_DEPTH_MODES:
        return np.array(pil.convert("RGB"), dtype=np.uint8)
    values = np.asarray(pil, dtype=np.float64)
    if pil.mode.startswith("I;16") or (pil.mode == "I" and values.max(initial=0) > 255):
        values = values * (255.0 / 65535.0)
    elif pil.mode == "F" and values.max(initial=0) <= 1.0:
        values = values * 255.0
    grey = np.clip(np.rint(values), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(np.repeat(grey[:, :, None], 3, axis=2))


@TRANSFORMS.register
class LoadAnnotations:
    """Turn the dataset record ``results['ann']`` into ground-truth tensors.

    Args:
        with_mask: also decode instance masks (polygons or RLE) at the image's original size.
        with_seg: also read the image's semantic map (``results['seg_path']``, a PNG of class
            indices, 255 = no label, as COCO-stuff's; set by a dataset's ``seg_prefix``).

    Adds ``gt_boxes`` (N, 4) float32 xyxy, ``gt_labels`` (N,) int64, ``ignored_boxes`` (M, 4)
    float32 (crowd regions), with ``with_mask`` ``gt_masks`` (N, H, W) uint8 and with
    ``with_seg`` ``gt_seg`` (H, W) uint8. Boxes are clipped to the image; those left with no
    area are dropped.
    """

    def __init__(self, with_mask: bool = False, with_seg: bool = False) -> None:
        self.with_mask = with_mask
        self.with_seg = with_seg

    def __call__(self, results: dict[str, Any]) -> dict[str, Any]:
        ann = results["ann"]
        results["gt_boxes"] = torch.as_tensor(ann["boxes"], dtype=torch.float32).reshape(-1, 4)
        results["gt_labels"] = torch.as_tensor(ann["labels"], dtype=torch.int64).reshape(-1)
        results["ignored_boxes"] = torch.as_tensor(
            ann["ignored_boxes"], dtype=torch.float32
        ).reshape(-1, 4)
        height, width = _original_size(results)
        if self.with_mask:
            rles = [
                segmentation_to_rle(segm, height, width, where=_where(results, ann_id))
                for segm, ann_id in zip(ann["segmentations"], ann["ann_ids"])
            ]
            results["gt_masks"] = torch.from_numpy(decode_rles(rles, height, width))
        if self.with_seg:
            results["gt_seg"] = _read_semantic_map(results, height, width)
        return drop_degenerate_boxes(results, shape=(height, width))

    def __repr__(self) -> str:
        return f"LoadAnnotations(with_mask={self.with_mask}, with_seg={self.with_seg})"


def _read_semantic_map(results: dict[str, Any], height: int, width: int) -> torch.Tensor:
    """The (height, width) uint8 class-index PNG at ``results['seg_path']``."""
    path = results.get("seg_path")
    if path is None:
        raise ConfigError("LoadAnnotations(with_seg=True) needs semantic maps: give the dataset "
                          "a seg_prefix (the folder of the per-image PNGs)")
    try:
        with Image.open(path) as pil:
            seg = np.array(pil)
    except (OSError, ValueError, SyntaxError) as exc:
        raise DatasetError(f"{path}: cannot read the semantic map ({exc}); check seg_prefix") \
            from None
    if seg.ndim != 2 or seg.shape != (height, width):
        raise DatasetError(f"{path}: semantic map of shape {seg.shape}, expected a one-channel "
                           f"{width}x{height} PNG of class indices (the image's size)")
    return torch.from_numpy(seg.astype(np.uint8))


def _original_size(results: dict[str, Any]) -> tuple[int, int]:
    if "ori_shape" not in results:
        return results["height"], results["width"]
    if results["img_shape"] != results["ori_shape"] or results.get("flip"):
        raise ConfigError("LoadAnnotations must come before Resize/RandomFlip in the pipeline, "
                          "right after LoadImage")
    return results["ori_shape"]


def _where(results: dict[str, Any], ann_id: int) -> str:
    source = results.get("ann_file", "annotation file")
    return f"{source}: annotation {ann_id} (image {results.get('file_name', '?')})"


def segmentation_to_rle(segm: Any, height: int, width: int, where: str = "") -> dict:
    """Turn a COCO segmentation into one RLE of a (height, width) mask.

    Accepts a list of polygons ``[[x1, y1, x2, y2, ...], ...]``, an uncompressed RLE
    (``counts`` a list of ints) or a compressed RLE (``counts`` a str or bytes).

    Raises:
        DatasetError: missing, empty or malformed segmentation, or an RLE of another size.
    """
    if isinstance(segm, list):
        polygons = [p for p in segm if isinstance(p, (list, tuple))]
        if not polygons or len(polygons) != len(segm):
            raise DatasetError(f"{where}: segmentation is missing or not a list of polygons; "
                               "fix it or load boxes only (with_mask=False)")
        if any(len(p) < 6 or len(p) % 2 for p in polygons):
            raise DatasetError(f"{where}: a polygon needs at least 3 (x, y) points; "
                               "fix or remove it")
        return mask_utils.merge(mask_utils.frPyObjects([list(map(float, p)) for p in polygons],
                                                       height, width))
    if isinstance(segm, dict) and "counts" in segm and "size" in segm:
        if list(segm["size"]) != [height, width]:
            raise DatasetError(f"{where}: RLE size {list(segm['size'])} differs from the image "
                               f"size [{height}, {width}]; fix the segmentation")
        if isinstance(segm["counts"], list):
            return mask_utils.frPyObjects(segm, height, width)
        return segm
    raise DatasetError(f"{where}: segmentation must be polygons or an RLE with 'size' and "
                       "'counts'; fix it or load boxes only (with_mask=False)")


def decode_rles(rles: list[dict], height: int, width: int) -> np.ndarray:
    """Decode RLEs into masks (N, height, width) uint8."""
    if not rles:
        return np.zeros((0, height, width), dtype=np.uint8)
    with warnings.catch_warnings():  # pycocotools' own NumPy 2 deprecation, nothing to act on
        warnings.simplefilter("ignore", DeprecationWarning)
        masks = mask_utils.decode(rles)  # (height, width, N), Fortran order
    return np.ascontiguousarray(masks.transpose(2, 0, 1), dtype=np.uint8)
