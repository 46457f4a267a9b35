"""Class-agnostic recall of proposals (or detections) at several proposal numbers and IoUs.

The usual check of a proposal generator on VOC (``metric="recall"``): per image, the ``N``
highest-scoring boxes are matched one-to-one to the ground truth, greedily by IoU (the pair
with the largest IoU first, then both removed, and so on); a ground-truth box counts as found
at threshold ``t`` when its match has ``IoU >= t``. Recall is found boxes over all boxes, over
the whole dataset; ``AR@N`` is its mean over the IoU thresholds. Crowd / difficult boxes are
left out. Boxes are continuous coordinates (no VOC ``+1``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from pycocotools.coco import COCO
from torchvision.ops import box_iou

from detbox.errors import ConfigError
from detbox.structures import DetSample, Instances

__all__ = ["RecallMetric", "greedy_match_ious", "recalls"]


def greedy_match_ious(ious: np.ndarray) -> np.ndarray:
    """IoU of each ground-truth box with its one-to-one greedy match.

    Args:
        ious: (G, P) IoUs of ground-truth boxes with proposals.

    Returns:
        (G,) the IoU each ground-truth box is matched at, 0 for one left without a proposal.
    """
    ious = np.array(ious, dtype=np.float64, copy=True)
    matched = np.zeros(ious.shape[0])
    for _ in range(min(ious.shape)):
        g, p = np.unravel_index(np.argmax(ious), ious.shape)
        if ious[g, p] < 0:
            break
        matched[g] = ious[g, p]
        ious[g, :] = -1.0
        ious[:, p] = -1.0
    return matched


def recalls(
    gt_boxes: Sequence[np.ndarray],
    proposals: Sequence[np.ndarray],
    proposal_nums: Sequence[int],
    iou_thrs: Sequence[float],
) -> np.ndarray:
    """Recall table over a dataset.

    Args:
        gt_boxes: per image, (G, 4) xyxy ground truth.
        proposals: per image, (P, 4) xyxy boxes sorted by decreasing score.
        proposal_nums: the top-``N`` numbers to score.
        iou_thrs: the IoU thresholds.

    Returns:
        (len(proposal_nums), len(iou_thrs)) recalls; zeros when there is no ground truth.
    """
    total = sum(len(g) for g in gt_boxes)
    table = np.zeros((len(proposal_nums), len(iou_thrs)))
    if total == 0:
        return table
    thrs = np.asarray(iou_thrs, dtype=np.float64)
    for i, num in enumerate(proposal_nums):
        matched = []
        for gt, props in zip(gt_boxes, proposals, strict=True):
            top = np.asarray(props, dtype=np.float64).reshape(-1, 4)[:num]
            gt = np.asarray(gt, dtype=np.float64).reshape(-1, 4)
            if len(gt) == 0:
                continue
            if len(top) == 0:
                matched.append(np.zeros(len(gt)))
                continue
            ious = box_iou(torch.from_numpy(gt), torch.from_numpy(top)).numpy()
            matched.append(greedy_match_ious(ious))
        found = np.concatenate(matched)
        table[i] = (found[:, None] >= thrs[None, :]).sum(axis=0) / total
    return table


class RecallMetric:
    """Class-agnostic recall of predictions against a COCO-indexed ground truth.

    Args:
        coco_gt: the ground truth (any dataset's ``coco``; ``iscrowd`` boxes, VOC's difficult
            ones included, are left out).
        proposal_nums: top-``N`` numbers (MMDetection's defaults).
        iou_thrs: IoU thresholds; ``AR@N`` (their mean) is reported when there are several.
    """

    def __init__(
        self,
        *,
        coco_gt: COCO,
        proposal_nums: Sequence[int] = (100, 300, 1000),
        iou_thrs: Sequence[float] | float = 0.5,
    ) -> None:
        thrs = [iou_thrs] if isinstance(iou_thrs, (int, float)) else list(iou_thrs)
        if not thrs or not all(0.0 < float(t) <= 1.0 for t in thrs):
            raise ConfigError(f"RecallMetric iou_thrs must be in (0, 1], got {iou_thrs!r}")
        if not proposal_nums or not all(int(n) > 0 for n in proposal_nums):
            raise ConfigError(f"RecallMetric proposal_nums must be positive, got "
                              f"{proposal_nums!r}")
        self.coco_gt = coco_gt
        self.proposal_nums = [int(n) for n in proposal_nums]
        self.iou_thrs = [float(t) for t in thrs]
        self.table = np.zeros((0, 0))
        self.reset()

    def reset(self) -> None:
        self._gts: dict[int, np.ndarray] = {}
        self._proposals: dict[int, np.ndarray] = {}

    def process(self, samples: Sequence[DetSample], predictions: Sequence[Instances]) -> None:
        """Add a batch of predictions in original image coordinates (labels are ignored)."""
        for sample, pred in zip(samples, predictions, strict=True):
            image_id = int(sample.image_id)
            if image_id not in self.coco_gt.imgs:
                raise ConfigError(f"RecallMetric: image_id {image_id} is not in the ground truth")
            boxes = pred.boxes.detach().cpu().double().numpy().reshape(-1, 4)
            if pred.scores is not None:
                order = np.argsort(-pred.scores.detach().cpu().numpy(), kind="stable")
                boxes = boxes[order]
            self._proposals[image_id] = boxes
            self._gts[image_id] = self._gt_boxes(image_id)

    def _gt_boxes(self, image_id: int) -> np.ndarray:
        boxes = [[x, y, x + w, y + h] for ann in self.coco_gt.imgToAnns.get(image_id, [])
                 if not ann.get("iscrowd", 0) for x, y, w, h in [ann["bbox"]]]
        return np.asarray(boxes, dtype=np.float64).reshape(-1, 4)

    def evaluate(self) -> dict[str, Any]:
        """``{"recall@N@IoU": r, ..., "AR@N": mean over IoUs (several IoUs only)}``; then
        resets."""
        ids = sorted(self._gts)
        self.table = recalls([self._gts[i] for i in ids], [self._proposals[i] for i in ids],
                             self.proposal_nums, self.iou_thrs)
        metrics: dict[str, Any] = {}
        for i, num in enumerate(self.proposal_nums):
            for j, thr in enumerate(self.iou_thrs):
                metrics[f"recall@{num}@{thr:g}"] = float(self.table[i, j])
            if len(self.iou_thrs) > 1:
                metrics[f"AR@{num}"] = float(self.table[i].mean())
        self.reset()
        return metrics

    def report(self) -> str:
        """The last :meth:`evaluate`'s table: one row per proposal number."""
        header = "   N  " + "  ".join(f"{t:>6g}" for t in self.iou_thrs) + "      AR"
        lines = ["class-agnostic recall at IoU", header]
        for num, row in zip(self.proposal_nums, self.table):
            values = "  ".join(f"{v:>6.3f}" for v in row)
            lines.append(f"{num:>4}  {values}  {row.mean():>6.3f}")
        return "\n".join(lines)
