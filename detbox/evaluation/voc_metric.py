"""Pascal VOC mean average precision: one IoU threshold, all-points area or VOC2007 11 points.

Matching follows the VOC devkit: per class, detections are taken from the highest score down;
each one is matched to the ground-truth box it overlaps most. With ``IoU >= iou_thr`` it is a
true positive if that box is still free, a false positive if an earlier detection took it, and
neither when the box is *difficult* (ignored); below the threshold it is a false positive.
Difficult boxes do not count towards recall. Boxes are continuous coordinates (no VOC ``+1``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from pycocotools.coco import COCO
from torchvision.ops import box_iou

from detbox.errors import ConfigError
from detbox.structures import DetSample, Instances, boxes_to_original

__all__ = ["VOC_MODES", "VOCMetric", "average_precision", "match_detections"]

VOC_MODES = ("area", "11points")


def average_precision(recall: np.ndarray, precision: np.ndarray, mode: str = "area") -> float:
    """AP of a precision/recall curve (points in decreasing score order).

    ``area``: the area under the curve after making precision monotonically decreasing (VOC2010
    and later). ``11points``: the mean of the best precision at recall >= 0, 0.1, ..., 1
    (VOC2007). The levels are exact tenths (``k / 10``): a recall of exactly 3/10 counts for
    the 0.3 level, which ports using ``np.arange(0, 1.1, 0.1)`` (0.30000000000000004) miss.
    """
    if mode == "11points":
        levels = [k / 10 for k in range(11)]
        return float(np.mean([precision[recall >= t].max() if (recall >= t).any() else 0.0
                              for t in levels]))
    if mode != "area":
        raise ConfigError(f"VOC AP mode must be one of {VOC_MODES}, got '{mode}'")
    r = np.concatenate([[0.0], recall, [1.0]])
    p = np.concatenate([[0.0], precision, [0.0]])
    p = np.maximum.accumulate(p[::-1])[::-1]
    steps = np.flatnonzero(r[1:] != r[:-1])
    return float(np.sum((r[steps + 1] - r[steps]) * p[steps + 1]))


def match_detections(
    boxes: np.ndarray,
    scores: np.ndarray,
    gt_boxes: np.ndarray,
    gt_ignored: np.ndarray,
    iou_thr: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Match one image's detections of one class to its ground truth.

    Args:
        boxes: (D, 4) xyxy detections; scores: (D,).
        gt_boxes: (G, 4) xyxy ground truth; gt_ignored: (G,) bool, True for difficult boxes.
        iou_thr: the IoU a match needs.

    Returns:
        ``(scores, status)`` in decreasing score order; status is 1 (true positive),
        0 (false positive) or -1 (matched a difficult box: not counted).
    """
    order = np.argsort(-scores, kind="stable")
    status = np.zeros(len(order), dtype=np.int8)
    if len(order) == 0 or len(gt_boxes) == 0:
        return scores[order], status
    ious = box_iou(torch.from_numpy(boxes[order]).double(),
                   torch.from_numpy(gt_boxes).double()).numpy()
    best, best_iou = ious.argmax(axis=1), ious.max(axis=1)
    taken = np.zeros(len(gt_boxes), dtype=bool)
    for k in np.flatnonzero(best_iou >= iou_thr):
        j = best[k]
        if gt_ignored[j]:
            status[k] = -1
        elif not taken[j]:
            taken[j] = True
            status[k] = 1
    return scores[order], status


class VOCMetric:
    """Pascal VOC mAP over a stream of predictions.

    Ground truth comes from ``coco_gt`` (any dataset's ``coco``: ``iscrowd`` boxes, which
    is what VOC's difficult objects become, are ignored) or, without it, from each sample's
    ``gt`` and ``ignored_boxes`` mapped back to the original image (undoing resize and flip).

    Args:
        iou_thr: IoU a true positive needs (VOC: 0.5).
        mode: ``"area"`` (all-points AP, VOC2010+) or ``"11points"`` (VOC2007).
        class_names: one name per contiguous label; the ground truth's names when None.
        coco_gt: ground truth as a pycocotools index.
        cat_ids: ``cat_ids[label]`` is the category id in ``coco_gt``; its sorted ids when None.
        classwise: put ``AP_per_class`` into :meth:`evaluate`'s output.
    """

    def __init__(
        self,
        iou_thr: float = 0.5,
        mode: str = "area",
        class_names: Sequence[str] | None = None,
        *,
        coco_gt: COCO | None = None,
        cat_ids: Sequence[int] | None = None,
        classwise: bool = True,
    ) -> None:
        if mode not in VOC_MODES:
            raise ConfigError(f"VOCMetric mode must be one of {VOC_MODES}, got '{mode}'")
        if not 0.0 < float(iou_thr) <= 1.0:
            raise ConfigError(f"VOCMetric iou_thr must be in (0, 1], got {iou_thr}")
        self.iou_thr, self.mode, self.classwise = float(iou_thr), mode, classwise
        self.coco_gt = coco_gt
        if coco_gt is not None:
            cat_ids = sorted(coco_gt.getCatIds()) if cat_ids is None else list(cat_ids)
            self._label_of = {int(c): label for label, c in enumerate(cat_ids)}
            if class_names is None:
                class_names = [coco_gt.cats[c]["name"] for c in cat_ids]
        if class_names is None:
            raise ConfigError("VOCMetric needs class_names (or coco_gt to take them from)")
        self.class_names = [str(n) for n in class_names]
        self.results: dict[str, dict[str, Any]] = {}
        self.reset()

    def reset(self) -> None:
        """Forget the images seen so far."""
        num_classes = len(self.class_names)
        self._scores: list[list[np.ndarray]] = [[] for _ in range(num_classes)]
        self._status: list[list[np.ndarray]] = [[] for _ in range(num_classes)]
        self._num_gt = np.zeros(num_classes, dtype=np.int64)
        self._image_ids: set[int] = set()

    def add_image(
        self,
        gt_boxes: Any,
        gt_labels: Any,
        boxes: Any,
        scores: Any,
        labels: Any,
        ignored_boxes: Any = None,
        ignored_labels: Any = None,
    ) -> None:
        """Add one image in original coordinates (arrays or tensors).

        Args:
            gt_boxes: (G, 4) xyxy; gt_labels: (G,) contiguous labels.
            boxes, scores, labels: (D, 4), (D,), (D,) detections.
            ignored_boxes: (M, 4) difficult boxes; ignored_labels: (M,) their labels, or None
                to ignore them for every class.
        """
        gt_boxes, gt_labels = _array(gt_boxes, (-1, 4)), _array(gt_labels, (-1,)).astype(int)
        boxes, scores = _array(boxes, (-1, 4)), _array(scores, (-1,))
        labels = _array(labels, (-1,)).astype(int)
        ignored = _array(ignored_boxes if ignored_boxes is not None else [], (-1, 4))
        ignored_lab = None if ignored_labels is None else _array(ignored_labels, (-1,)).astype(int)
        present = np.unique(np.concatenate([gt_labels, labels]))
        for c in present[(present >= 0) & (present < len(self.class_names))]:
            is_ignored = np.ones(len(ignored), bool) if ignored_lab is None else ignored_lab == c
            gt_c = np.concatenate([gt_boxes[gt_labels == c], ignored[is_ignored]])
            flags = np.arange(len(gt_c)) >= int((gt_labels == c).sum())
            self._num_gt[c] += int((gt_labels == c).sum())
            det = labels == c
            if det.any():
                s, status = match_detections(boxes[det], scores[det], gt_c, flags, self.iou_thr)
                self._scores[c].append(s)
                self._status[c].append(status)

    def process(self, samples: Sequence[DetSample], predictions: Sequence[Instances]) -> None:
        """Add a batch: predictions in original image coordinates with contiguous labels.

        An image seen twice (e.g. padding of a distributed sampler) counts once.
        """
        if len(samples) != len(predictions):
            raise ValueError(f"{len(samples)} samples but {len(predictions)} predictions")
        for sample, pred in zip(samples, predictions, strict=True):
            image_id = int(sample.image_id)
            if image_id in self._image_ids:
                continue
            self._image_ids.add(image_id)
            gt = self._gt_from_coco(image_id) if self.coco_gt is not None else _gt_of(sample)
            scores = pred.scores if pred.scores is not None else torch.ones(len(pred))
            self.add_image(gt[0], gt[1], pred.boxes, scores, pred.labels, gt[2], gt[3])

    def _gt_from_coco(self, image_id: int) -> tuple[np.ndarray, ...]:
        if image_id not in self.coco_gt.imgs:
            raise ConfigError(f"VOCMetric: image_id {image_id} is not in the ground truth")
        boxes, labels, ignored, ignored_labels = [], [], [], []
        for ann in self.coco_gt.imgToAnns.get(image_id, []):
            label = self._label_of.get(int(ann["category_id"]))
            if label is None:
                continue
            x, y, w, h = ann["bbox"]
            crowd = bool(ann.get("iscrowd", 0))
            (ignored if crowd else boxes).append([x, y, x + w, y + h])
            (ignored_labels if crowd else labels).append(label)
        return (np.asarray(boxes, float).reshape(-1, 4), np.asarray(labels, int),
                np.asarray(ignored, float).reshape(-1, 4), np.asarray(ignored_labels, int))

    def evaluate(self) -> dict[str, Any]:
        """Score everything added since the last reset, then reset.

        Returns:
            ``{"mAP": float, "AP_per_class": {name: AP}}`` (the latter when ``classwise``);
            the mean is over classes with ground truth, a class without any has AP ``-1``
            (and mAP is ``-1`` when no class has ground truth). Per-class details (``num_gt``,
            ``num_dets``, ``recall``, ``AP``) stay in ``self.results``.
        """
        self.results = {}
        for c, name in enumerate(self.class_names):
            self.results[name] = self._evaluate_class(c)
        aps = [r["AP"] for r in self.results.values() if r["num_gt"] > 0]
        metrics: dict[str, Any] = {"mAP": float(np.mean(aps)) if aps else -1.0}
        if self.classwise:
            metrics["AP_per_class"] = {n: r["AP"] for n, r in self.results.items()}
        self.reset()
        return metrics

    def _evaluate_class(self, c: int) -> dict[str, Any]:
        num_gt = int(self._num_gt[c])
        scores = np.concatenate(self._scores[c]) if self._scores[c] else np.zeros(0)
        status = np.concatenate(self._status[c]) if self._status[c] else np.zeros(0, np.int8)
        counted = status >= 0
        order = np.argsort(-scores[counted], kind="stable")
        tp = (status[counted][order] == 1).astype(np.float64)
        cum_tp, cum_fp = np.cumsum(tp), np.cumsum(1.0 - tp)
        if num_gt == 0:
            return {"AP": -1.0, "num_gt": 0, "num_dets": int(len(tp)), "recall": -1.0}
        recall = cum_tp / num_gt
        precision = cum_tp / np.maximum(cum_tp + cum_fp, np.finfo(np.float64).eps)
        return {"AP": average_precision(recall, precision, self.mode), "num_gt": num_gt,
                "num_dets": int(len(tp)), "recall": float(recall[-1]) if len(tp) else 0.0}

    def report(self) -> str:
        """A per-class table of the last :meth:`evaluate`, for logs."""
        width = max([5, *(len(n) for n in self.results)])
        lines = [f"VOC AP@{self.iou_thr:g} ({self.mode})",
                 f"{'class':<{width}}  {'gts':>6}  {'dets':>6}  {'recall':>6}  {'AP':>6}"]
        for name, r in self.results.items():
            lines.append(f"{name:<{width}}  {r['num_gt']:>6}  {r['num_dets']:>6}  "
                         f"{r['recall']:>6.3f}  {r['AP']:>6.3f}")
        aps = [r["AP"] for r in self.results.values() if r["num_gt"] > 0]
        lines.append(f"{'mAP':<{width}}  {'':>6}  {'':>6}  {'':>6}  "
                     f"{(np.mean(aps) if aps else -1.0):>6.3f}")
        return "\n".join(lines)


def _array(value: Any, shape: tuple[int, ...]) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    return np.asarray(value, dtype=np.float64).reshape(shape)


def _gt_of(sample: DetSample) -> tuple[Any, ...]:
    """A sample's ground truth mapped back to the original image (unflipped, unscaled)."""
    gt = sample.gt_or_empty("cpu")

    def to_original(boxes: torch.Tensor) -> torch.Tensor:
        return boxes_to_original(boxes.float().cpu(), sample.img_shape, sample.scale_factor,
                                 sample.flip)

    return to_original(gt.boxes), gt.labels, to_original(sample.ignored_boxes), None
