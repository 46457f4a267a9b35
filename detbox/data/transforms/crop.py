"""Random crops for training: a crop window, and SSD's crop with a minimum IoU to the objects.

A crop cannot be undone at prediction time (``DetSample`` records only scale and flip), so these
transforms belong in training pipelines, after ``LoadAnnotations``; they refuse to run on a
sample without annotations, which is what a test pipeline produces.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any, Literal, get_args

import torch
from torch import Tensor
from torchvision.ops import box_iou

from detbox.errors import ConfigError
from detbox.registry import TRANSFORMS

__all__ = ["MinIoURandomCrop", "RandomCrop", "crop_results", "require_training_sample"]

CropType = Literal["absolute", "absolute_range", "relative", "relative_range"]
BoxFilter = Literal["center", "clip"]
_CROP_TYPES = get_args(CropType)
_BOX_FILTERS = get_args(BoxFilter)


def require_training_sample(
    results: dict[str, Any], name: str, before_normalize: bool = False
) -> None:
    """Raise ConfigError unless ``results`` holds ground truth and is not padded yet.

    Geometric augmentations that ``predict`` cannot undo must stay out of test pipelines (which
    load no annotations). With ``before_normalize`` the image must still be on the 0-255 scale.
    """
    if "gt_boxes" not in results:
        raise ConfigError(f"{name} is a training augmentation: put it after LoadAnnotations in "
                          "the train pipeline (predictions could not be mapped back through it)")
    if "pad_shape" in results:
        raise ConfigError(f"{name} must come before Pad in the pipeline")
    if before_normalize and "img_norm" in results:
        raise ConfigError(f"{name} works on 0-255 pixel values: put it before Normalize")


def _box_centres_inside(boxes: Tensor, height: int, width: int) -> Tensor:
    cx = (boxes[:, 0] + boxes[:, 2]) / 2
    cy = (boxes[:, 1] + boxes[:, 3]) / 2
    return (cx > 0) & (cx < width) & (cy > 0) & (cy < height)


def _clip_boxes(boxes: Tensor, height: int, width: int) -> tuple[Tensor, Tensor]:
    """Boxes clipped to the image, and which of them keep a positive area."""
    x = boxes[:, 0::2].clamp(0, width)
    y = boxes[:, 1::2].clamp(0, height)
    clipped = torch.stack([x[:, 0], y[:, 0], x[:, 1], y[:, 1]], dim=1)
    return clipped, (clipped[:, 2] > clipped[:, 0]) & (clipped[:, 3] > clipped[:, 1])


def crop_results(
    results: dict[str, Any], window: tuple[int, int, int, int], box_filter: str = "center"
) -> dict[str, Any]:
    """Crop image, boxes, masks, ignored boxes and proposals to ``window = (left, top, right,
    bottom)``.

    Args:
        results: the transform dict; updated in place and returned.
        window: integer pixel bounds inside the current image.
        box_filter: ``'center'`` keeps the objects whose box centre lies inside the window (SSD,
            Detectron2); ``'clip'`` keeps every object with some area inside. Kept boxes are
            clipped to the window in both cases; ignored boxes are always clipped.
    """
    left, top, right, bottom = window
    height, width = bottom - top, right - left
    results["img"] = results["img"][:, top:bottom, left:right]
    offset = torch.tensor([left, top, left, top], dtype=torch.float32)
    if "gt_boxes" in results:
        boxes = results["gt_boxes"] - offset
        clipped, keep = _clip_boxes(boxes, height, width)
        if box_filter == "center":
            keep &= _box_centres_inside(boxes, height, width)
        results["gt_boxes"] = clipped[keep]
        results["gt_labels"] = results["gt_labels"][keep]
        if "gt_masks" in results:
            results["gt_masks"] = results["gt_masks"][keep][:, top:bottom, left:right]
    if "ignored_boxes" in results:
        ignored, keep = _clip_boxes(results["ignored_boxes"] - offset, height, width)
        results["ignored_boxes"] = ignored[keep]
    if "gt_seg" in results:
        results["gt_seg"] = results["gt_seg"][top:bottom, left:right]
    if "proposals" in results:
        proposals, keep = _clip_boxes(results["proposals"] - offset, height, width)
        results["proposals"] = proposals[keep]
        results["proposal_scores"] = results["proposal_scores"][keep]
    results["img_shape"] = (height, width)
    return results


def _kept_count(boxes: Tensor, window: tuple[int, int, int, int], box_filter: str) -> int:
    left, top, right, bottom = window
    shifted = boxes - torch.tensor([left, top, left, top], dtype=torch.float32)
    _, keep = _clip_boxes(shifted, bottom - top, right - left)
    if box_filter == "center":
        keep &= _box_centres_inside(shifted, bottom - top, right - left)
    return int(keep.sum())


@TRANSFORMS.register
class RandomCrop:
    """Crop a random window of the image.

    Args:
        crop_size: ``(height, width)``; its meaning depends on ``crop_type``:
            ``'absolute'`` pixels; ``'absolute_range'`` ``(min, max)`` pixels, height and width
            drawn independently; ``'relative'`` fractions of the image; ``'relative_range'``
            minimum fractions, each drawn from ``[min, 1]``. A window never exceeds the image.
        crop_type: see ``crop_size``.
        box_filter: ``'center'`` or ``'clip'``, see ``crop_results``.
        allow_empty: accept a window that keeps no object of an image that has some; otherwise
            up to ``max_tries`` windows are drawn and the image is left uncropped if all fail.
        max_tries: windows to draw before giving up.
    """

    def __init__(
        self,
        crop_size: Sequence[float],
        crop_type: CropType = "absolute",
        box_filter: BoxFilter = "center",
        allow_empty: bool = False,
        max_tries: int = 10,
    ) -> None:
        if crop_type not in _CROP_TYPES:
            raise ConfigError(f"RandomCrop crop_type must be one of {_CROP_TYPES}, got "
                              f"{crop_type!r}")
        if box_filter not in _BOX_FILTERS:
            raise ConfigError(f"RandomCrop box_filter must be one of {_BOX_FILTERS}, got "
                              f"{box_filter!r}")
        if len(crop_size) != 2 or min(crop_size) <= 0:
            raise ConfigError(f"RandomCrop crop_size must be two positive numbers, got "
                              f"{crop_size!r}")
        if crop_type.startswith("relative") and max(crop_size) > 1:
            raise ConfigError(f"RandomCrop {crop_type} crop_size must be fractions in (0, 1], "
                              f"got {crop_size!r}")
        if crop_type == "absolute_range" and crop_size[0] > crop_size[1]:
            raise ConfigError(f"RandomCrop absolute_range crop_size must be (min, max), got "
                              f"{crop_size!r}")
        self.crop_size = (crop_size[0], crop_size[1])
        self.crop_type = crop_type
        self.box_filter = box_filter
        self.allow_empty = allow_empty
        self.max_tries = max(1, int(max_tries))

    def _window_size(self, height: int, width: int) -> tuple[int, int]:
        first, second = self.crop_size
        if self.crop_type == "absolute":
            h, w = int(first), int(second)
        elif self.crop_type == "absolute_range":
            h = random.randint(int(first), max(int(first), min(height, int(second))))
            w = random.randint(int(first), max(int(first), min(width, int(second))))
        elif self.crop_type == "relative":
            h, w = round(height * first), round(width * second)
        else:
            h = round(height * random.uniform(first, 1.0))
            w = round(width * random.uniform(second, 1.0))
        return max(1, min(h, height)), max(1, min(w, width))

    def _random_window(self, height: int, width: int) -> tuple[int, int, int, int]:
        h, w = self._window_size(height, width)
        top, left = random.randint(0, height - h), random.randint(0, width - w)
        return left, top, left + w, top + h

    def __call__(self, results: dict[str, Any]) -> dict[str, Any]:
        require_training_sample(results, "RandomCrop")
        height, width = results["img_shape"]
        boxes = results["gt_boxes"]
        for _ in range(self.max_tries):
            window = self._random_window(height, width)
            if self.allow_empty or len(boxes) == 0 or _kept_count(boxes, window,
                                                                  self.box_filter) > 0:
                return crop_results(results, window, self.box_filter)
        return results

    def __repr__(self) -> str:
        return (f"RandomCrop(crop_size={self.crop_size}, crop_type={self.crop_type!r}, "
                f"box_filter={self.box_filter!r}, allow_empty={self.allow_empty})")


@TRANSFORMS.register
class MinIoURandomCrop:
    """SSD's crop: a window whose IoU with every object is at least a randomly chosen threshold.

    Per image one mode is drawn from ``(None, *min_ious)``: ``None`` keeps the whole image,
    a number asks for a window with ``IoU >= it`` against every box, a side of at least
    ``min_crop_size`` of the image's, an aspect ratio ``h / w`` within ``aspect_range`` and at
    least one box centre inside. Objects whose centre falls outside are dropped (``'center'``).

    Args:
        min_ious: the IoU thresholds to choose from.
        min_crop_size: smallest window side as a fraction of the image side.
        aspect_range: allowed ``(min, max)`` of the window's height / width.
        max_tries: windows drawn per mode before drawing another mode; after ``max_rounds``
            modes without success the image is left uncropped.
        max_rounds: see ``max_tries``.
    """

    def __init__(
        self,
        min_ious: Sequence[float] = (0.1, 0.3, 0.5, 0.7, 0.9),
        min_crop_size: float = 0.3,
        aspect_range: Sequence[float] = (0.5, 2.0),
        max_tries: int = 50,
        max_rounds: int = 10,
    ) -> None:
        if not 0 < min_crop_size <= 1:
            raise ConfigError(f"MinIoURandomCrop min_crop_size must be in (0, 1], got "
                              f"{min_crop_size}")
        if len(aspect_range) != 2 or not 0 < aspect_range[0] <= aspect_range[1]:
            raise ConfigError(f"MinIoURandomCrop aspect_range must be (min, max), got "
                              f"{aspect_range!r}")
        self.min_ious = tuple(float(v) for v in min_ious)
        self.min_crop_size = float(min_crop_size)
        self.aspect_range = (float(aspect_range[0]), float(aspect_range[1]))
        self.max_tries = max(1, int(max_tries))
        self.max_rounds = max(1, int(max_rounds))

    def _candidate(self, height: int, width: int) -> tuple[int, int, int, int] | None:
        w = random.uniform(self.min_crop_size * width, width)
        h = random.uniform(self.min_crop_size * height, height)
        if not self.aspect_range[0] <= h / w <= self.aspect_range[1]:
            return None
        left = int(random.uniform(0, width - w))
        top = int(random.uniform(0, height - h))
        return left, top, min(width, left + max(1, int(w))), min(height, top + max(1, int(h)))

    def _acceptable(self, boxes: Tensor, window: tuple[int, int, int, int],
                    min_iou: float) -> bool:
        if len(boxes) == 0:
            return True
        patch = torch.tensor([window], dtype=torch.float32)
        if box_iou(patch, boxes).min() < min_iou:
            return False
        return _kept_count(boxes, window, "center") > 0

    def __call__(self, results: dict[str, Any]) -> dict[str, Any]:
        require_training_sample(results, "MinIoURandomCrop")
        height, width = results["img_shape"]
        boxes = results["gt_boxes"]
        for _ in range(self.max_rounds):
            min_iou = random.choice((None, *self.min_ious))
            if min_iou is None:
                return results
            for _ in range(self.max_tries):
                window = self._candidate(height, width)
                if window is not None and self._acceptable(boxes, window, min_iou):
                    return crop_results(results, window, "center")
        return results

    def __repr__(self) -> str:
        return (f"MinIoURandomCrop(min_ious={self.min_ious}, min_crop_size="
                f"{self.min_crop_size}, aspect_range={self.aspect_range})")
