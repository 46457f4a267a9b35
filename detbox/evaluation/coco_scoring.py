"""Scoring a whole COCO results list against its ground truth with COCOeval, and what a report
needs from it.

``coco_metric.CocoMetric`` collects predictions image by image and calls this module once it
has them all. A COCOeval backend (``coco_backends``: NumPy, faster-coco-eval or pycocotools)
does the matching and the accumulation; this module feeds it, and reads pycocotools' summary
numbers and lines and the per-class AP from the accumulated arrays.
"""

from __future__ import annotations

import contextlib
import gc
import io
import os
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pycocotools.coco import COCO

from detbox.errors import DatasetError
from detbox.evaluation.coco_backends import Accumulated, run_cocoeval
from detbox.evaluation.coco_summary import mean_valid, summarize
from detbox.evaluation.detection_columns import BoxColumns
from detbox.evaluation.results_file import read_json

__all__ = [
    "IOU_TYPES",
    "ClassAP",
    "CocoEvalResult",
    "check_gt_supports",
    "evaluate_coco",
    "gc_paused",
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


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off inside the block, back as it was after.

    Reading a results file, indexing it and matching it make millions of small dicts and lists
    that form no reference cycles; every collection started meanwhile walks all of them, which
    made loading and scoring 500k detections several times slower than the work itself.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


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
    backend: str | None = None,
    columns: BoxColumns | None = None,
) -> CocoEvalResult:
    """Score ``results`` against ``coco_gt`` with COCOeval (see ``coco_backends``).

    For ``segm`` the instance area of each result (for the small/medium/large split) comes from
    its mask, as for the ground truth, never from its box (the MMDetection and Detectron2
    convention). ``proposal`` is class-agnostic box recall (``useCats=0``), usually with
    ``max_dets=(100, 300, 1000)``.

    Args:
        coco_gt: the ground truth.
        results: COCO result dicts (not modified).
        iou_type: ``"bbox"``, ``"segm"`` or ``"proposal"``.
        img_ids: images to evaluate; all ground-truth images when None.
        cat_ids: categories to evaluate, in label order; all ground-truth categories when None.
        class_names: display names aligned with ``cat_ids``; the ground truth's names when None.
        max_dets: the three detection limits of the summary.
        backend: one of ``coco_backends.BACKENDS``: ``"numpy"`` (the default when None; masks
            go to faster-coco-eval), ``"faster-coco-eval"`` or ``"pycocotools"``; all give the
            same numbers.
        columns: the box results as ``check_results`` returned them, so that the NumPy
            backend does not read them again.

    Returns:
        The 12 stats, the summary lines and per-class AP.
    """
    if iou_type not in IOU_TYPES:
        raise ValueError(f"iou_type must be one of {IOU_TYPES}, got '{iou_type}'")
    if len(max_dets) != 3:
        raise ValueError(f"max_dets must hold three limits, got {tuple(max_dets)}")
    coco_type = "bbox" if iou_type == "proposal" else iou_type
    use_cats = iou_type != "proposal"
    evaluated_cats = sorted(coco_gt.getCatIds()) if cat_ids is None else [int(c) for c in cat_ids]
    if class_names is not None and len(class_names) != len(evaluated_cats):
        raise ValueError(f"{len(class_names)} class names for {len(evaluated_cats)} categories")
    with gc_paused():
        accumulated = run_cocoeval(
            coco_gt,
            results,
            coco_type,
            img_ids=sorted(coco_gt.getImgIds()) if img_ids is None else img_ids,
            cat_ids=evaluated_cats,
            max_dets=max_dets,
            use_cats=use_cats,
            backend=backend,
            columns=columns,
        )
    stats, lines = summarize(accumulated)
    per_class = []
    if use_cats:
        names = class_names or [coco_gt.cats[c]["name"] for c in evaluated_cats]
        per_class = _per_class_ap(accumulated, coco_gt, evaluated_cats, names)
    return CocoEvalResult(
        iou_type=iou_type,
        stats=stats,
        max_dets=accumulated.max_dets,
        summary_lines=lines,
        per_class=per_class,
        num_images=len(accumulated.img_ids),
        num_detections=len(results),
    )


def _per_class_ap(
    acc: Accumulated, coco_gt: COCO, cat_ids: Sequence[int], names: Sequence[str]
) -> list[ClassAP]:
    """AP, AP50 and AP75 per category from the precision array at area 'all', top maxDets."""
    column = {cat_id: k for k, cat_id in enumerate(acc.cat_ids)}
    at_all = acc.precision[:, :, :, acc.area_labels.index("all"), -1]  # (T, R, K)
    iou50 = int(np.argmin(np.abs(acc.iou_thrs - 0.5)))
    iou75 = int(np.argmin(np.abs(acc.iou_thrs - 0.75)))
    num_gt = _count_gt(coco_gt, acc.img_ids)
    rows = []
    for cat_id, name in zip(cat_ids, names, strict=True):
        per_cat = at_all[:, :, column[cat_id]]
        rows.append(ClassAP(
            name=str(name), category_id=int(cat_id), ap=mean_valid(per_cat),
            ap50=mean_valid(per_cat[iou50]), ap75=mean_valid(per_cat[iou75]),
            num_gt=num_gt.get(cat_id, 0),
        ))
    return rows


def _count_gt(coco_gt: COCO, img_ids: Sequence[int]) -> Counter:
    """Non-crowd ground-truth instances per category (crowds are ignored by COCOeval)."""
    return Counter(
        ann["category_id"]
        for img_id in img_ids
        for ann in coco_gt.imgToAnns.get(img_id, ())
        if not ann.get("iscrowd", 0)
    )
