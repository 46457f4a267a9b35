"""Transforms that finish a sample: normalize the image and pack it with a DetSample."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from detbox.errors import ConfigError
from detbox.registry import TRANSFORMS
from detbox.structures import DetSample, Instances

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "Normalize", "PackDetInputs"]

# ImageNet statistics on the 0-255 scale, RGB order (torchvision's weights expect these).
IMAGENET_MEAN = (123.675, 116.28, 103.53)
IMAGENET_STD = (58.395, 57.12, 57.375)


@TRANSFORMS.register
class Normalize:
    """``img = (img - mean) / std`` per channel, on the 0-255 scale; output float32.

    detbox loads images as RGB. ``to_rgb=True`` (the default) keeps that order: the network
    sees RGB, as torchvision's ImageNet weights expect. ``to_rgb=False`` means the network does
    *not* see RGB: the channels are flipped to BGR before normalizing, as the Caffe-trained
    MSRA / Detectron weights expect (MMDetection's caffe recipes write
    ``mean=[103.530, 116.280, 123.675], std=[1.0, 1.0, 1.0], to_rgb=False``). The option keeps
    MMDetection's name and its effect on the network input: MMDetection loads BGR and its
    ``to_rgb=True`` converts to RGB, detbox loads RGB and its ``to_rgb=False`` converts to BGR.
    ``mean`` and ``std`` are always in the network's channel order (BGR with ``to_rgb=False``).

    Every pipeline built from a config (training, testing, ``detbox infer``, serving, ONNX
    export, TTA) runs this transform, so the choice travels with the config. The results get
    ``img_norm = {"mean", "std", "to_rgb"}`` to undo it for display.
    """

    def __init__(
        self, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD,
        to_rgb: bool = True,
    ) -> None:
        if len(mean) != 3 or len(std) != 3 or any(s <= 0 for s in std):
            raise ConfigError(f"Normalize needs 3 means and 3 positive stds, got {mean}, {std}")
        if not isinstance(to_rgb, bool):
            raise ConfigError(f"Normalize to_rgb must be True or False, got {to_rgb!r}")
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)
        self.to_rgb = to_rgb

    def __call__(self, results: dict[str, Any]) -> dict[str, Any]:
        image = results["img"].float()
        if not self.to_rgb:
            image = image.flip(0)  # (3, H, W) RGB -> BGR
        mean = torch.tensor(self.mean, dtype=image.dtype).view(3, 1, 1)
        std = torch.tensor(self.std, dtype=image.dtype).view(3, 1, 1)
        results["img"] = (image - mean) / std
        results["img_norm"] = {"mean": self.mean, "std": self.std, "to_rgb": self.to_rgb}
        return results

    def __repr__(self) -> str:
        return f"Normalize(mean={self.mean}, std={self.std}, to_rgb={self.to_rgb})"


@TRANSFORMS.register
class PackDetInputs:
    """Turn the results dict into ``(image (3, H, W) float32, DetSample)``.

    ``sample.gt`` is an Instances (boxes (N, 4) float32, labels (N,) int64, masks (N, H, W)
    uint8 when loaded) if the pipeline loaded annotations, else None; ``sample.gt_sem_seg`` is
    the (H, W) uint8 semantic map when loaded (``LoadAnnotations(with_seg=True)``);
    ``sample.proposals`` an Instances (boxes, scores, zero labels) if it loaded proposals.
    ``sample.extra`` holds ``img_path`` and, when present, ``pad_shape`` and ``img_norm``, plus
    ``results["extra"]``.
    """

    EXTRA_KEYS = ("img_path", "pad_shape", "img_norm")

    def __call__(self, results: dict[str, Any]) -> tuple[Tensor, DetSample]:
        image = results["img"].float().contiguous()
        gt = None
        if "gt_boxes" in results:
            gt = Instances(
                boxes=results["gt_boxes"].float(),
                labels=results["gt_labels"].long(),
                masks=results.get("gt_masks"),
            )
        proposals = None
        if "proposals" in results:
            boxes = results["proposals"].float()
            proposals = Instances(boxes=boxes, scores=results["proposal_scores"].float(),
                                  labels=torch.zeros(boxes.shape[0], dtype=torch.int64))
        extra = {k: results[k] for k in self.EXTRA_KEYS if k in results}
        extra.update(results.get("extra", {}))
        sample = DetSample(
            image_id=int(results["image_id"]),
            file_name=results["file_name"],
            ori_shape=tuple(results["ori_shape"]),
            img_shape=tuple(results["img_shape"]),
            scale_factor=tuple(float(f) for f in results["scale_factor"]),
            flip=results.get("flip"),
            gt=gt,
            ignored_boxes=results.get("ignored_boxes", torch.zeros((0, 4))).float(),
            extra=extra,
            gt_sem_seg=results.get("gt_seg"),
            proposals=proposals,
        )
        return image, sample

    def __repr__(self) -> str:
        return "PackDetInputs()"
