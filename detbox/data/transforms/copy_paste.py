"""Simple Copy-Paste (Ghiasi et al., "Simple Copy-Paste is a Strong Data Augmentation Method for
Instance Segmentation", CVPR 2021): objects of another training image pasted onto this one.

It is the maintained successor of InstaBoost (Fang et al., 2019), whose ``instaboostfast``
package is unmaintained (no release for recent Python / NumPy); copy-paste needs no extra
package, only the instance masks.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Annotated, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from detbox.data.transforms.crop import require_training_sample
from detbox.errors import ConfigError
from detbox.registry import TRANSFORMS
from detbox.typecheck import Positive, Probability, Range

__all__ = ["CopyPaste", "mask_boxes"]

IGNORE_LABEL = 255


def mask_boxes(masks: Tensor) -> Tensor:
    """(N, 4) float32 xyxy boxes enclosing each (N, H, W) mask's pixels (``x2``/``y2``
    exclusive, so a pixel ``(x, y)`` spans ``[x, x + 1)``); zeros for an empty mask."""
    masks = masks.view(torch.uint8) if masks.dtype == torch.bool else masks
    if len(masks) == 0:
        return torch.zeros((0, 4), dtype=torch.float32)
    rows = masks.amax(dim=2) != 0  # (N, H): which rows hold a pixel
    cols = masks.amax(dim=1) != 0  # (N, W)
    height, width = masks.shape[-2:]
    boxes = torch.stack([
        cols.byte().argmax(dim=1), rows.byte().argmax(dim=1),
        width - cols.flip(1).byte().argmax(dim=1), height - rows.flip(1).byte().argmax(dim=1),
    ], dim=1).float()
    return boxes * rows.any(dim=1, keepdim=True)


def _areas(masks: Tensor) -> Tensor:
    """(N,) int64 pixel counts of (N, H, W) masks (NumPy counts bytes far faster)."""
    flat = masks.reshape(len(masks), masks.shape[-2] * masks.shape[-1]).numpy()
    return torch.from_numpy(np.count_nonzero(flat, axis=1).astype(np.int64))


def _fit(tensor: Tensor, height: int, width: int, fill: float) -> Tensor:
    """(..., h, w) cropped or padded (bottom/right, with ``fill``) to (..., height, width)."""
    tensor = tensor[..., :height, :width]
    pad = (0, width - tensor.shape[-1], 0, height - tensor.shape[-2])
    return F.pad(tensor, pad, value=fill) if any(pad) else tensor


def _scaled(tensor: Tensor, size: tuple[int, int], mode: str) -> Tensor:
    """(C, h, w) resized to ``size``: an image bilinearly (uint8 stays uint8, which is several
    times faster than float), masks and maps by nearest neighbour."""
    if tuple(tensor.shape[-2:]) == size or tensor.shape[0] == 0:
        return tensor.new_zeros((tensor.shape[0], *size)) if tensor.shape[0] == 0 else tensor
    if mode == "bilinear":
        return F.interpolate(tensor[None], size=size, mode=mode, align_corners=False)[0]
    return F.interpolate(tensor[:, None], size=size, mode=mode)[:, 0]


@TRANSFORMS.register
class CopyPaste:
    """Paste a random subset of another sample's objects (pixels and masks) onto this image.

    The other sample comes from ``results["mix_results"][0]``, which ``MultiImageMixDataset``
    fills (``num_mix_images = 1``). It is scaled by a factor drawn from ``scale_range`` and
    placed at the top-left corner (cropped or padded to this image's size), as in the paper,
    where both images are scale-jittered beforehand. Pasted objects cover the originals:
    their masks lose the covered pixels and their boxes are recomputed from what remains; an
    original object is dropped (box, label and mask) once it keeps fewer than ``min_area``
    pixels or more than ``max_occluded`` of its pixels are covered. Objects the paste does
    not touch are kept as they are. A semantic map ``gt_seg`` takes the source's labels under
    the pasted pixels (255 where the source has none).

    Args:
        prob: chance to paste onto an image.
        max_paste: at most this many source objects per image.
        select_random: paste a random non-empty subset of the source's objects (the paper);
            False pastes the first ``max_paste``.
        scale_range: ``(min, max)`` factor for the source image (1.0: as loaded).
        min_area: an occluded original object keeping fewer pixels than this is dropped.
        max_occluded: an original object with more than this fraction covered is dropped.

    Needs ``gt_masks`` in both samples (``LoadAnnotations(with_mask=True)``); the image must
    still be on the 0-255 scale and unpadded.
    """

    num_mix_images = 1

    def __init__(
        self,
        prob: Annotated[float, Probability] = 1.0,
        max_paste: Annotated[int, Positive] = 100,
        select_random: bool = True,
        scale_range: Sequence[float] = (1.0, 1.0),
        min_area: Annotated[int, Range(ge=0)] = 20,
        max_occluded: Annotated[float, Probability] = 0.95,
    ) -> None:
        if len(scale_range) != 2 or not 0 < scale_range[0] <= scale_range[1]:
            raise ConfigError(f"CopyPaste scale_range must be (min, max) with 0 < min <= max, "
                              f"got {scale_range!r}")
        self.prob = float(prob)
        self.max_paste = int(max_paste)
        self.select_random = select_random
        self.scale_range = (float(scale_range[0]), float(scale_range[1]))
        self.min_area = int(min_area)
        self.max_occluded = float(max_occluded)

    def __call__(self, results: dict[str, Any]) -> dict[str, Any]:
        require_training_sample(results, "CopyPaste", before_normalize=True)
        sources = results.get("mix_results")
        if not sources:
            raise ConfigError("CopyPaste needs a second image: wrap the dataset in "
                              "MultiImageMixDataset and put CopyPaste in the wrapper's pipeline")
        if "gt_masks" not in results or "gt_masks" not in sources[0]:
            raise ConfigError("CopyPaste pastes instance masks: load them with "
                              "LoadAnnotations(with_mask=True)")
        if self.prob <= 0 or random.random() >= self.prob:
            return results
        pasted = self._source_objects(sources[0], results["img_shape"])
        if pasted is not None:
            self._paste(results, *pasted)
        return results

    def _chosen(self, count: int) -> list[int]:
        limit = min(count, self.max_paste)
        if not self.select_random:
            return list(range(limit))
        return sorted(random.sample(range(count), random.randint(1, limit)))

    def _source_objects(self, source: dict[str, Any], shape: tuple[int, int]
                        ) -> tuple[Tensor, Tensor, Tensor, Tensor | None] | None:
        """Image (3, H, W) (uint8, or float32 for a float source), masks (K, H, W) uint8,
        labels (K,) and semantic map of the chosen source objects, scaled and placed on this
        image's canvas; None if none is left."""
        masks = source["gt_masks"]
        if len(masks) == 0:
            return None
        chosen = torch.tensor(self._chosen(len(masks)), dtype=torch.int64)
        height, width = source["img"].shape[-2:]
        ratio = random.uniform(*self.scale_range)
        size = (max(1, round(height * ratio)), max(1, round(width * ratio)))
        image = source["img"] if source["img"].dtype == torch.uint8 else source["img"].float()
        image = _fit(_scaled(image, size, "bilinear"), *shape, 0)
        masks = _fit(_scaled(masks[chosen], size, "nearest"), *shape, 0)
        seg = source.get("gt_seg")
        if seg is not None:
            seg = _fit(_scaled(seg[None], size, "nearest")[0], *shape, IGNORE_LABEL)
        visible = masks.flatten(1).amax(dim=1) != 0
        if not visible.any():
            return None
        return image, masks[visible], source["gt_labels"][chosen][visible], seg

    def _paste(self, results: dict[str, Any], image: Tensor, masks: Tensor, labels: Tensor,
               seg: Tensor | None) -> None:
        cover = masks.amax(dim=0) != 0
        target = results["img"]
        if target.dtype == torch.uint8 and image.is_floating_point():
            image = image.round().clamp(0, 255)
        results["img"] = torch.where(cover, image.to(target.dtype), target)
        kept, boxes, old_masks = self._surviving_originals(results, cover)
        results["gt_masks"] = torch.cat([old_masks[kept], masks.to(old_masks.dtype)])
        results["gt_boxes"] = torch.cat([boxes[kept], mask_boxes(masks)])
        results["gt_labels"] = torch.cat([results["gt_labels"][kept],
                                          labels.to(results["gt_labels"].dtype)])
        if "gt_seg" in results:
            pasted_seg = seg if seg is not None else torch.full_like(cover, IGNORE_LABEL,
                                                                     dtype=torch.uint8)
            results["gt_seg"] = torch.where(cover, pasted_seg.to(results["gt_seg"].dtype),
                                            results["gt_seg"])

    def _surviving_originals(self, results: dict[str, Any], cover: Tensor
                             ) -> tuple[Tensor, Tensor, Tensor]:
        """Which original objects stay, their boxes (recomputed where covered) and their
        masks with the covered pixels removed."""
        masks = results["gt_masks"]
        before = _areas(masks)
        masks = masks.masked_fill(cover, 0)
        after = _areas(masks)
        touched = after < before
        covered = 1.0 - after.float() / before.clamp(min=1).float()
        lost = touched & ((after < max(self.min_area, 1)) | (covered > self.max_occluded))
        boxes = results["gt_boxes"].clone()
        boxes[touched] = mask_boxes(masks[touched])
        return ~lost, boxes, masks

    def __repr__(self) -> str:
        return (f"CopyPaste(prob={self.prob}, max_paste={self.max_paste}, "
                f"select_random={self.select_random}, scale_range={self.scale_range}, "
                f"min_area={self.min_area}, max_occluded={self.max_occluded})")
