"""Scoring a whole COCO results list against its ground truth: pycocotools' COCOeval, run
quietly, and what a report needs from it.

``coco_metric.CocoMetric`` collects predictions image by image and calls this module once it
has them all. pycocotools does the matching and the accumulation; this module feeds it,
silences its progress prints, keeps its summary lines for logs and reads per-class AP from its
precision array.
"""

from __future__ import annotations

import contextlib
import copy
import io
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from detbox.errors import DatasetError
from detbox.evaluation.results import read_json

__all__ = [
    "IOU_TYPES",
    "ClassAP",
    "CocoEvalResult",
    "check_gt_supports",
    "evaluate_coco",
    "load_coco_gt",
]

IOU_TYPES = ("bbox", "segm", "proposal")
DEFAULT_MAX_DETS = (1, 10, 100)


@dataclass(frozen=True)
class ClassAP:
    """AP of one category (area "all", largest ``maxDets``); ``-1`` means no ground truth."""

    name: str
    category_id: int
    ap: float
    ap50: float
    ap75: float
    num_gt: int

    def to_dict(self) -> dict[str, float | int]:
        return {
            "category_id": self.category_id, "AP": self.ap, "AP50": self.ap50,
            "AP75": self.ap75, "num_gt": self.num_gt,
        }


@dataclass
class CocoEvalResult:
    """The outcome of one COCOeval run.

    Attributes:
        iou_type: ``"bbox"``, ``"segm"`` or ``"proposal"``.
        stats: pycocotools' 12 summary numbers in its order (AP, AP50, AP75, AP_s, AP_m, AP_l,
            AR@maxDets[0..2], AR_s, AR_m, AR_l).
        max_dets: the three ``maxDets`` the summary used.
        summary_lines: pycocotools' printed summary, one line per number.
        per_class: one entry per evaluated category (empty for class-agnostic proposals).
        num_images: images evaluated.
        num_detections: results given (before pycocotools keeps the top ``maxDets``).
    """

    iou_type: str
    stats: list[float]
    max_dets: tuple[int, int, int]
    summary_lines: list[str]
    per_class: list[ClassAP] = field(default_factory=list)
    num_images: int = 0
    num_detections: int = 0

    def to_dict(self) -> dict[str, Any]:
        """``{"stats": [...], "per_class": {name: {"AP", "AP50", "AP75", "num_gt", ...}}}``."""
        return {
            "stats": list(self.stats),
            "per_class": {c.name: c.to_dict() for c in self.per_class},
        }


@contextlib.contextmanager
def _captured_stdout():
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        yield buffer


def load_coco_gt(source: str | os.PathLike | dict[str, Any] | COCO) -> COCO:
    """A pycocotools COCO object from a file path, a COCO-format dict or an existing object.

    Raises:
        DatasetError: the file is missing, not JSON, or lacks ``images``/``annotations``/
            ``categories``.
    """
    if isinstance(source, COCO):
        return source
    name = "ground truth"
    if not isinstance(source, dict):
        name = f"ground-truth file '{os.fspath(source)}'"
        source = read_json(source, "ground-truth file", DatasetError)
    if not isinstance(source, dict):
        raise DatasetError(f"{name} must hold a COCO object with images, annotations, categories")
    for key in ("images", "annotations", "categories"):
        if not isinstance(source.get(key), list):
            raise DatasetError(f"{name} is not COCO format: it has no '{key}' list")
    coco = COCO()
    coco.dataset = source
    with _captured_stdout():
        coco.createIndex()
    return coco


def check_gt_supports(coco_gt: COCO, iou_type: str, gt_name: str = "the ground truth") -> None:
    """Raise DatasetError when the ground truth lacks what ``iou_type`` evaluation reads."""
    if iou_type not in IOU_TYPES:
        raise ValueError(f"iou_type must be one of {IOU_TYPES}, got '{iou_type}'")
    needed = ("bbox", "area") if iou_type != "segm" else ("segmentation", "area")
    for ann in coco_gt.dataset.get("annotations", []):
        missing = [k for k in ("image_id", "category_id", *needed) if k not in ann]
        if missing:
            raise DatasetError(
                f"{gt_name}: annotation {ann.get('id', '?')} has no '{missing[0]}', "
                f"which {iou_type} evaluation needs"
            )


def evaluate_coco(
    coco_gt: COCO,
    results: list[dict[str, Any]],
    iou_type: str,
    *,
    img_ids: Sequence[int] | None = None,
    cat_ids: Sequence[int] | None = None,
    class_names: Sequence[str] | None = None,
    max_dets: Sequence[int] = DEFAULT_MAX_DETS,
) -> CocoEvalResult:
    """Score ``results`` against ``coco_gt`` with pycocotools.

    For ``segm`` the ``bbox`` of each result is dropped before loading, so that pycocotools takes
    the instance area (for the small/medium/large split) from the mask, as for the ground truth;
    otherwise it would use the box area. ``proposal`` is class-agnostic box recall
    (``useCats=0``), usually with ``max_dets=(100, 300, 1000)``.

    Args:
        coco_gt: the ground truth.
        results: COCO result dicts (not modified).
        iou_type: ``"bbox"``, ``"segm"`` or ``"proposal"``.
        img_ids: images to evaluate; all ground-truth images when None.
        cat_ids: categories to evaluate, in label order; all ground-truth categories when None.
        class_names: display names aligned with ``cat_ids``; the ground truth's names when None.
        max_dets: the three detection limits of the summary.

    Returns:
        The 12 stats, the summary lines and per-class AP.
    """
    if iou_type not in IOU_TYPES:
        raise ValueError(f"iou_type must be one of {IOU_TYPES}, got '{iou_type}'")
    if len(max_dets) != 3:
        raise ValueError(f"max_dets must hold three limits, got {tuple(max_dets)}")
    coco_type = "bbox" if iou_type == "proposal" else iou_type
    with _captured_stdout():
        coco_dt = _load_results(coco_gt, _copy_for_loading(results, coco_type))
        coco_eval = COCOeval(coco_gt, coco_dt, coco_type)
        if img_ids is not None:
            coco_eval.params.imgIds = sorted(set(img_ids))
        if cat_ids is not None:
            coco_eval.params.catIds = list(cat_ids)
        coco_eval.params.maxDets = [int(m) for m in max_dets]
        coco_eval.params.useCats = int(iou_type != "proposal")
        coco_eval.evaluate()
        coco_eval.accumulate()
    with _captured_stdout() as summary:
        coco_eval.summarize()
    per_class = [] if iou_type == "proposal" else _per_class_ap(coco_eval, coco_gt, class_names)
    return CocoEvalResult(
        iou_type=iou_type,
        stats=[float(s) for s in coco_eval.stats],
        max_dets=tuple(coco_eval.params.maxDets),
        summary_lines=summary.getvalue().splitlines(),
        per_class=per_class,
        num_images=len(coco_eval.params.imgIds),
        num_detections=len(results),
    )


def _copy_for_loading(results: list[dict[str, Any]], coco_type: str) -> list[dict[str, Any]]:
    """Copies for loadRes (which writes area/id/iscrowd into each dict).

    Segm copies drop ``bbox`` (areas then come from the masks) and rank by ``mask_score`` where
    a result has one (Mask Scoring R-CNN: classification score x predicted mask IoU).
    """
    if coco_type == "segm":
        copies = [{k: v for k, v in r.items() if k != "bbox"} for r in results]
        for copy_ in copies:
            copy_["score"] = copy_.get("mask_score", copy_["score"])
        return copies
    return [dict(r) for r in results]


def _load_results(coco_gt: COCO, anns: list[dict[str, Any]]) -> COCO:
    if anns:
        return coco_gt.loadRes(anns)
    # loadRes cannot take an empty list (it looks at the first result): build the empty set.
    coco_dt = COCO()
    coco_dt.dataset = {
        "images": list(coco_gt.dataset["images"]),
        "categories": copy.deepcopy(coco_gt.dataset["categories"]),
        "annotations": [],
    }
    coco_dt.createIndex()
    return coco_dt


def _per_class_ap(
    coco_eval: COCOeval, coco_gt: COCO, class_names: Sequence[str] | None
) -> list[ClassAP]:
    """AP, AP50 and AP75 per category from the precision array at area 'all', top maxDets."""
    params = coco_eval.params
    precision = coco_eval.eval["precision"]  # (iou thresholds, recall points, K, areas, maxDets)
    area = params.areaRngLbl.index("all")
    iou50 = int(np.argmin(np.abs(params.iouThrs - 0.5)))
    iou75 = int(np.argmin(np.abs(params.iouThrs - 0.75)))
    num_gt = _count_gt(coco_gt, params.imgIds)
    if class_names is not None and len(class_names) != len(params.catIds):
        raise ValueError(f"{len(class_names)} class names for {len(params.catIds)} categories")
    rows = []
    for k, cat_id in enumerate(params.catIds):
        per_cat = precision[:, :, k, area, -1]
        name = class_names[k] if class_names is not None else coco_gt.cats[cat_id]["name"]
        rows.append(ClassAP(
            name=str(name), category_id=int(cat_id), ap=_mean_valid(per_cat),
            ap50=_mean_valid(per_cat[iou50]), ap75=_mean_valid(per_cat[iou75]),
            num_gt=num_gt.get(cat_id, 0),
        ))
    return rows


def _mean_valid(values: np.ndarray) -> float:
    valid = values[values > -1]
    return float(valid.mean()) if valid.size else -1.0


def _count_gt(coco_gt: COCO, img_ids: Sequence[int]) -> Counter:
    """Non-crowd ground-truth instances per category (crowds are ignored by COCOeval)."""
    return Counter(
        ann["category_id"]
        for img_id in img_ids
        for ann in coco_gt.imgToAnns.get(img_id, ())
        if not ann.get("iscrowd", 0)
    )
