"""Evaluation plots: per-class precision-recall curves and a confusion matrix.

The PR curves are pycocotools' own: the ``precision`` array COCOeval accumulates (interpolated
precision at 101 recall points, per IoU threshold and class), read at area "all" and 100
detections per image, so each curve's area is the AP that ``detbox test`` reports.

The confusion matrix matches detections to ground truth one to one, in decreasing score:
a detection takes the unmatched ground-truth box it overlaps most (IoU >= ``iou_thr``),
preferring one of its own class. Rows are ground-truth classes plus a last "background" row
(detections that matched nothing: false positives); columns are predicted classes plus a
last "background" column (ground truth that nothing matched: misses).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pycocotools.coco import COCO
from torchvision.ops import box_iou

from detbox.structures import DetSample, Instances

__all__ = [
    "coco_precision",
    "confusion_matrix",
    "gt_from_coco",
    "plot_confusion_matrix",
    "plot_pr_curves",
    "save_eval_plots",
]


def coco_precision(coco_gt: COCO, results: list[dict[str, Any]], img_ids: Sequence[int],
                   cat_ids: Sequence[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """COCOeval's box precision array for these results.

    Returns:
        ``precision`` (T, R, K): IoU thresholds x recall points x classes (in ``cat_ids``
        order), ``-1`` where a class has no ground truth; the IoU thresholds (T,) and the
        recall points (R,).
    """
    import contextlib
    import io

    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        coco_dt = coco_gt.loadRes([dict(r) for r in results]) if results else COCO()
        if not results:  # loadRes cannot take an empty list
            coco_dt.dataset = {"images": coco_gt.dataset["images"], "annotations": [],
                               "categories": coco_gt.dataset["categories"]}
            coco_dt.createIndex()
        evaluator = COCOeval(coco_gt, coco_dt, "bbox")
        evaluator.params.imgIds = sorted(set(int(i) for i in img_ids))
        evaluator.params.catIds = list(cat_ids)
        evaluator.evaluate()
        evaluator.accumulate()
    params = evaluator.params
    area = params.areaRngLbl.index("all")
    precision = evaluator.eval["precision"][:, :, :, area, -1]
    return precision, np.asarray(params.iouThrs), np.asarray(params.recThrs)


def plot_pr_curves(precision: np.ndarray, iou_thrs: np.ndarray, recall: np.ndarray,
                   class_names: Sequence[str], out_file: str | os.PathLike) -> Path:
    """One subplot per class: precision over recall at IoU 0.50, 0.75 and averaged over
    0.50:0.95 (the AP), with the AP in the title; classes without ground truth say so."""
    count = len(class_names)
    cols = int(np.ceil(np.sqrt(count)))
    rows = int(np.ceil(count / cols))
    fig = _figure((3.2 * cols, 2.8 * rows))
    axes = fig.subplots(rows, cols, squeeze=False)
    picks = {"IoU 0.50": _iou_index(iou_thrs, 0.5), "IoU 0.75": _iou_index(iou_thrs, 0.75)}
    for k, ax in enumerate(axes.flat):
        if k >= count:
            ax.axis("off")
            continue
        curves = precision[:, :, k]
        if (curves < 0).all():
            ax.set_title(f"{class_names[k]}: no ground truth", fontsize=9)
            ax.axis("off")
            continue
        for label, t in picks.items():
            ax.plot(recall, np.clip(curves[t], 0, None), label=label)
        mean = np.clip(curves, 0, None).mean(axis=0)
        ax.plot(recall, mean, label="IoU 0.50:0.95", linestyle="--")
        ax.set_title(f"{class_names[k]}: AP {mean.mean():.3f}", fontsize=9)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
        ax.set_xlabel("recall", fontsize=8)
        ax.set_ylabel("precision", fontsize=8)
        ax.grid(alpha=0.3)
    axes.flat[0].legend(fontsize=7)
    return _save(fig, out_file)


def _iou_index(iou_thrs: np.ndarray, value: float) -> int:
    return int(np.argmin(np.abs(iou_thrs - value)))


def gt_from_coco(coco: COCO, image_ids: Sequence[int], cat_ids: Sequence[int]
                 ) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per image, non-crowd ground truth as ((N, 4) xyxy boxes, (N,) contiguous labels);
    categories outside ``cat_ids`` are left out."""
    label_of = {int(c): i for i, c in enumerate(cat_ids)}
    out = []
    for image_id in image_ids:
        anns = [a for a in coco.imgToAnns.get(int(image_id), ())
                if not a.get("iscrowd", 0) and int(a["category_id"]) in label_of]
        boxes = torch.tensor([[a["bbox"][0], a["bbox"][1], a["bbox"][0] + a["bbox"][2],
                               a["bbox"][1] + a["bbox"][3]] for a in anns],
                             dtype=torch.float32).reshape(-1, 4)
        labels = torch.tensor([label_of[int(a["category_id"])] for a in anns], dtype=torch.int64)
        out.append((boxes, labels))
    return out


def _match_image(matrix: np.ndarray, gt_boxes: torch.Tensor, gt_labels: torch.Tensor,
                 dets: Instances, iou_thr: float) -> None:
    background = matrix.shape[0] - 1
    order = torch.argsort(dets.scores, descending=True)
    ious = box_iou(dets.boxes[order].float(), gt_boxes) if len(gt_boxes) else None
    taken = torch.zeros(len(gt_boxes), dtype=torch.bool)
    for row, det in enumerate(order.tolist()):
        label = int(dets.labels[det])
        if ious is None:
            matrix[background, label] += 1
            continue
        candidates = (ious[row] >= iou_thr) & ~taken
        same = candidates & (gt_labels == label)
        pool = same if same.any() else candidates
        if not pool.any():
            matrix[background, label] += 1
            continue
        gt = int(torch.where(pool, ious[row], torch.full_like(ious[row], -1.0)).argmax())
        taken[gt] = True
        matrix[int(gt_labels[gt]), label] += 1
    for gt in torch.nonzero(~taken).flatten().tolist():
        matrix[int(gt_labels[gt]), background] += 1


def confusion_matrix(
    gts: Sequence[tuple[torch.Tensor, torch.Tensor]], predictions: Sequence[Instances],
    num_classes: int, score_thr: float = 0.3, iou_thr: float = 0.5,
) -> np.ndarray:
    """(C + 1, C + 1) counts: ``[gt class, predicted class]``, background last (see the module
    docstring).

    Args:
        gts: per image, ((N, 4) xyxy boxes, (N,) labels), as :func:`gt_from_coco` gives.
        predictions: per image, detections in the same coordinates.
        num_classes: C.
        score_thr: detections scoring below this are ignored.
        iou_thr: least IoU for a detection to match a ground-truth box.
    """
    matrix = np.zeros((num_classes + 1, num_classes + 1), dtype=np.int64)
    for (boxes, labels), dets in zip(gts, predictions, strict=True):
        dets = dets[dets.scores >= score_thr]
        _match_image(matrix, boxes.float(), labels, dets, iou_thr)
    return matrix


def plot_confusion_matrix(matrix: np.ndarray, class_names: Sequence[str],
                          out_file: str | os.PathLike, title: str = "") -> Path:
    """Rows normalized to sum to 1 (colour), raw counts written in the cells (up to 30
    classes)."""
    names = [*class_names, "background"]
    size = max(5.0, 0.45 * len(names) + 2)
    fig = _figure((size, size * 0.9))
    ax = fig.subplots()
    totals = matrix.sum(axis=1, keepdims=True)
    shares = np.divide(matrix, totals, out=np.zeros(matrix.shape, dtype=float),
                       where=totals > 0)
    image = ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of the row")
    ax.set_xticks(range(len(names)), names, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(names)), names, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("ground truth")
    if len(names) <= 31:
        for (i, j), count in np.ndenumerate(matrix):
            if count:
                ax.text(j, i, str(count), ha="center", va="center", fontsize=7,
                        color="white" if shares[i, j] > 0.5 else "black")
    ax.set_title(title or "confusion matrix")
    return _save(fig, out_file)


def save_eval_plots(dataset: Any, samples: Sequence[DetSample],
                    predictions: Sequence[Instances], out_dir: str | os.PathLike,
                    score_thr: float = 0.3, iou_thr: float = 0.5) -> list[Path]:
    """``pr_curves.png`` and ``confusion_matrix.png`` for predictions on a COCO dataset.

    Args:
        dataset: with ``coco``, ``cat_ids`` and ``class_names`` (a ``CocoDataset``).
        samples, predictions: what ``run_inference`` collected (original image coordinates).
        out_dir: where the PNG files go.
        score_thr, iou_thr: of the confusion matrix.
    """
    from detbox.evaluation import instances_to_coco_results

    cat_ids, names = list(dataset.cat_ids), list(dataset.class_names)
    image_ids = [int(s.image_id) for s in samples]
    results = [r for s, p in zip(samples, predictions)
               for r in instances_to_coco_results(s.image_id, p, cat_ids)]
    out_dir = Path(out_dir)
    precision, iou_thrs, recall = coco_precision(dataset.coco, results, image_ids, cat_ids)
    pr = plot_pr_curves(precision, iou_thrs, recall, names, out_dir / "pr_curves.png")
    matrix = confusion_matrix(gt_from_coco(dataset.coco, image_ids, cat_ids), predictions,
                              len(names), score_thr, iou_thr)
    title = f"confusion matrix (score >= {score_thr}, IoU >= {iou_thr})"
    cm = plot_confusion_matrix(matrix, names, out_dir / "confusion_matrix.png", title)
    return [pr, cm]


def _figure(size: tuple[float, float]) -> Any:
    """A matplotlib Figure that is not registered with pyplot (no global backend change)."""
    from matplotlib.figure import Figure

    return Figure(figsize=size)


def _save(fig: Any, out_file: str | os.PathLike) -> Path:
    out_file = Path(out_file)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(out_file, dpi=100)
    return out_file
