"""Test-time augmentation (TTA): predict on resized and flipped views of each image, then merge.

Any detector works: each view goes through the detector's own ``predict``, which already maps
its detections back to the original image (undoing the view's scale and flip), so merging is a
matter of pooling the views' detections and removing duplicates, per class.

Switched on by a top-level config section (or ``--tta`` on ``detbox test`` / ``detbox infer``)::

    tta = dict(scales=[(1333, 640), (1333, 800)], flip=True, merge="nms", merge_iou_thr=0.5)

With ``scales`` the test pipeline's ``Resize`` is left out, so every view is resized from the
original image exactly as ``Resize`` would; without ``scales`` the views keep the pipeline's size
(flip-only TTA).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.ops import batched_nms, box_iou

from detbox.apis.build import check_section
from detbox.data.collate import collate
from detbox.data.transforms import RandomResize, Resize, resized_size
from detbox.errors import ConfigError
from detbox.structures import DetSample, ImageBatch, Instances, compose_flips

__all__ = [
    "TTA_DEFAULTS",
    "TTADetector",
    "describe_tta",
    "maybe_wrap_for_tta",
    "merge_detections",
    "tta_settings",
    "tta_test_section",
    "weighted_box_fusion",
    "wrap_for_tta",
]

TTA_DEFAULTS: dict[str, Any] = {
    "scales": None,
    "flip": True,
    "flip_direction": "horizontal",
    "merge": "nms",
    "merge_iou_thr": 0.5,
    "max_per_img": 100,
}


def weighted_box_fusion(dets: Instances, num_views: int, iou_thr: float) -> Instances:
    """Fuse same-class detections that overlap by more than ``iou_thr`` (weighted box fusion).

    Detections are visited by decreasing score; each joins the first cluster of its class whose
    fused box it overlaps by more than ``iou_thr``, else starts one. A cluster's box is the
    score-weighted mean of its members, its score ``sum(scores) / max(len(cluster), num_views)``
    (views that missed the object lower the score); other fields (masks, mask IoU) come from the
    cluster's best-scoring member.
    """
    dets = dets[dets.scores.argsort(descending=True)]
    members: list[list[int]] = []
    fused = dets.boxes.new_zeros((0, 4))
    fused_labels: list[int] = []
    for i, (box, label) in enumerate(zip(dets.boxes, dets.labels.tolist())):
        same = torch.tensor([lab == label for lab in fused_labels], dtype=torch.bool)
        ious = box_iou(box[None], fused)[0] if len(fused) else fused.new_zeros(0)
        ious = torch.where(same.to(ious.device), ious, ious.new_zeros(()))
        if len(ious) and ious.max() > iou_thr:
            target = int(ious.argmax())
            members[target].append(i)
            weights = dets.scores[members[target]][:, None]
            fused[target] = (dets.boxes[members[target]] * weights).sum(0) / weights.sum()
        else:
            members.append([i])
            fused = torch.cat([fused, box[None]])
            fused_labels.append(label)
    leaders = dets[torch.tensor([m[0] for m in members], dtype=torch.long)]
    scores = torch.stack([dets.scores[m].sum() / max(len(m), num_views) for m in members]) \
        if members else dets.scores
    merged = replace(leaders, boxes=fused, scores=scores)
    return merged[merged.scores.argsort(descending=True)]


def merge_detections(
    parts: Sequence[Instances], method: str = "nms", iou_thr: float = 0.5,
    max_per_img: int = 100,
) -> Instances:
    """Merge the detections of several views of one image (all in original coordinates).

    Args:
        parts: one Instances per view, with ``scores``.
        method: ``'nms'`` (pool, then class-wise NMS: masks come with the kept detection) or
            ``'wbf'`` (``weighted_box_fusion``).
        iou_thr: IoU above which two same-class detections are the same object.
        max_per_img: keep at most this many, best first.
    """
    merged = Instances.cat(list(parts))
    if len(merged) == 0:
        return merged
    if method == "nms":
        keep = batched_nms(merged.boxes, merged.scores, merged.labels, iou_thr)
        return merged[keep[:max_per_img]]
    return weighted_box_fusion(merged, len(parts), iou_thr)[:max_per_img]


def _make_view(
    image: Tensor, sample: DetSample, scale: tuple[float, float] | None, flip: str | None
) -> tuple[Tensor, DetSample]:
    """One view of a batch image: resized to ``scale`` (a (long, short) bound on the original
    size, as ``Resize`` computes it) and flipped, with the sample that maps it back."""
    height, width = sample.img_shape
    view = image[:, :height, :width]
    scale_factor = sample.scale_factor
    if scale is not None:
        ori_h, ori_w = (int(v) for v in sample.ori_shape)
        height, width = resized_size(ori_h, ori_w, scale[0], scale[1])
        if tuple(view.shape[-2:]) != (height, width):
            view = F.interpolate(view[None], size=(height, width), mode="bilinear",
                                 align_corners=False)[0]
        scale_factor = (width / ori_w, height / ori_h)
    if flip is not None:
        view = view.flip({"horizontal": [-1], "vertical": [-2], "diagonal": [-2, -1]}[flip])
    return view, replace(sample, img_shape=(height, width), scale_factor=scale_factor,
                         flip=compose_flips(sample.flip, flip), gt=None)


class TTADetector(nn.Module):
    """Wraps a detector; ``predict`` runs it on every view of each image and merges.

    Args:
        detector: any detector whose ``predict`` returns Instances in original coordinates.
        scales: ``(long, short)`` bounds of the views (keep-ratio, like ``Resize``); None keeps
            each image at the size the data pipeline gave it.
        flip: also predict on a flipped copy of every scale.
        flip_direction: ``'horizontal'``, ``'vertical'`` or ``'diagonal'``.
        merge: ``'nms'`` or ``'wbf'``, see ``merge_detections``.
        merge_iou_thr: IoU above which detections of different views are merged.
        max_per_img: detections kept per image after merging.
        size_divisor: padding multiple of the view batches (as in the data loader).
    """

    def __init__(
        self,
        detector: nn.Module,
        *,
        scales: Sequence[Sequence[float]] | None = None,
        flip: bool = True,
        flip_direction: str = "horizontal",
        merge: str = "nms",
        merge_iou_thr: float = 0.5,
        max_per_img: int = 100,
        size_divisor: int = 32,
    ) -> None:
        super().__init__()
        if merge not in ("nms", "wbf"):
            raise ConfigError(f"tta.merge must be 'nms' or 'wbf', got {merge!r}")
        if flip_direction not in ("horizontal", "vertical", "diagonal"):
            raise ConfigError(f"tta.flip_direction must be 'horizontal', 'vertical' or "
                              f"'diagonal', got {flip_direction!r}")
        if scales is not None and (not scales or any(len(s) != 2 for s in scales)):
            raise ConfigError(f"tta.scales must be a list of (long, short) pairs, got {scales!r}")
        self.detector = detector
        self.scales = None if scales is None else [(float(a), float(b)) for a, b in scales]
        self.flips = [None, flip_direction] if flip else [None]
        self.merge, self.merge_iou_thr = merge, float(merge_iou_thr)
        self.max_per_img, self.size_divisor = int(max_per_img), size_divisor
        self.cfg: Mapping[str, Any] | None = getattr(detector, "cfg", None)
        self.dataset_meta: dict[str, list] = getattr(detector, "dataset_meta", {})

    @property
    def num_views(self) -> int:
        return len(self.scales or [None]) * len(self.flips)

    def view_batches(self, batch: ImageBatch) -> list[ImageBatch]:
        """One batch per (scale, flip) view, images in the same order as ``batch``."""
        return [
            collate([_make_view(image, sample, scale, flip)
                     for image, sample in zip(batch.images, batch.samples)], self.size_divisor)
            for scale in (self.scales or [None]) for flip in self.flips
        ]

    def predict(self, batch: ImageBatch) -> list[Instances]:
        """Merged detections per image, in original image coordinates."""
        per_view = [self.detector.predict(view) for view in self.view_batches(batch)]
        return [
            merge_detections([view[i] for view in per_view], self.merge, self.merge_iou_thr,
                             self.max_per_img)
            for i in range(len(batch))
        ]

    def loss(self, batch: ImageBatch) -> dict[str, Tensor]:
        raise TypeError("test-time augmentation is for inference; train the wrapped detector")

    def forward(self, images: Tensor) -> Any:
        return self.detector(images)


def tta_settings(cfg: Mapping[str, Any], enable: bool | None = None) -> dict[str, Any] | None:
    """The TTA settings to use, or None for plain inference.

    Args:
        cfg: the config; its top-level ``tta`` section (if any) holds the settings.
        enable: True forces TTA on (``--tta``; the section's settings, else flip-only TTA),
            False off, None follows the config (on when ``tta`` is a dict).

    Raises:
        ConfigError: an unknown key in the ``tta`` section.
    """
    section = cfg.get("tta")
    if enable is False or (enable is None and not isinstance(section, Mapping)):
        return None
    section = dict(section) if isinstance(section, Mapping) else {}
    return check_section(section, TTA_DEFAULTS, "tta")


def _is_resize(step: Any) -> bool:
    kind = step.get("type") if isinstance(step, Mapping) else type(step)
    return kind in ("Resize", "RandomResize", Resize, RandomResize)


def _pipeline_for(steps: Sequence[Any], settings: Mapping[str, Any]) -> list[Any]:
    """The test pipeline for TTA: without Resize when the views pick their own scales."""
    if settings.get("scales") is None:
        return list(steps)
    return [step for step in steps if not _is_resize(step)]


def tta_test_section(section: Mapping[str, Any], settings: Mapping[str, Any]) -> dict:
    """A copy of a test data loader section with its pipeline prepared for TTA."""
    section = copy.deepcopy(dict(section))
    dataset = dict(section.get("dataset") or {})
    if dataset.get("pipeline"):
        dataset["pipeline"] = _pipeline_for(dataset["pipeline"], settings)
    section["dataset"] = dataset
    return section


def wrap_for_tta(model: nn.Module, settings: Mapping[str, Any]) -> TTADetector:
    """``TTADetector(model, **settings)``, carrying ``dataset_meta`` and a ``cfg`` whose
    ``test_pipeline`` suits TTA (what ``inference_detector`` reads)."""
    wrapped = TTADetector(model, **settings).eval()
    cfg = getattr(model, "cfg", None)
    if cfg is not None:
        section = cfg.get("test_dataloader") or cfg.get("val_dataloader") or {}
        steps = cfg.get("test_pipeline") or (section.get("dataset") or {}).get("pipeline")
        wrapped.cfg = copy.deepcopy(cfg)
        if steps:
            wrapped.cfg["test_pipeline"] = _pipeline_for(steps, settings)
    return wrapped


def maybe_wrap_for_tta(model: nn.Module, cfg: Mapping[str, Any],
                       enable: bool | None = None) -> nn.Module:
    """``model`` wrapped for TTA when ``tta_settings(cfg, enable)`` asks for it, else itself."""
    settings = tta_settings(cfg, enable)
    return model if settings is None else wrap_for_tta(model, settings)


def describe_tta(settings: Mapping[str, Any]) -> str:
    """One line for the console, e.g. ``2 scales x flip, merged by nms (IoU 0.5)``."""
    scales = settings.get("scales")
    views = "the test scale" if scales is None else f"{len(scales)} scales {list(scales)}"
    flip = f" x {settings['flip_direction']} flip" if settings.get("flip") else ""
    return f"{views}{flip}, merged by {settings['merge']} (IoU {settings['merge_iou_thr']})"
