"""COCO error analysis (Hoiem et al., "Diagnosing Error in Object Detectors", ECCV 2012, as the
COCO API's ``analyze()`` does it): how much AP each kind of error costs.

Seven precision-recall curves per category, each forgiving one more kind of error:

- ``C75``, ``C50``: PR at IoU .75 and .50 (the plain COCO curves);
- ``Loc``: PR at IoU .10, so localisation errors are forgiven (duplicates are not);
- ``Sim``: also forgiving confusion with a class of the same supercategory: those classes'
  ground truth becomes ignored ground truth (a crowd region) of the analysed class;
- ``Oth``: also forgiving confusion with any class (all other classes' ground truth ignored);
- ``BG``: also forgiving every remaining false positive (background): precision 1 up to the
  recall ``Oth`` reaches;
- ``FN``: also forgiving the missed objects: precision 1 everywhere.

Each curve's AP (the mean of its 101 interpolated precision values) is the AP the detector
would have if those errors were fixed; the gaps between curves are what each error costs.
Everything is at 100 detections per image and evaluated with detbox's NumPy COCOeval (boxes).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import Params

from detbox.data.coco import make_coco
from detbox.evaluation.coco_numpy import evaluate_boxes
from detbox.evaluation.detection_columns import BoxColumns
from detbox.evaluation.results_file import check_results

__all__ = ["CURVES", "ErrorAnalysis", "analyze_errors"]

CURVES = ("C75", "C50", "Loc", "Sim", "Oth", "BG", "FN")
CURVE_HELP = {
    "C75": "PR at IoU=.75", "C50": "PR at IoU=.50", "Loc": "PR at IoU=.10 (localisation "
    "errors forgiven)", "Sim": "supercategory false positives removed", "Oth": "class "
    "confusion false positives removed", "BG": "all false positives removed", "FN": "all "
    "false negatives removed",
}
_IOUS = (0.75, 0.5, 0.1)


@dataclass(frozen=True)
class ErrorAnalysis:
    """The seven curves.

    Attributes:
        precision: (7, R, K, A) interpolated precision per curve (``CURVES`` order), recall
            point, category and area range; ``-1`` where a category has no ground truth of
            that area.
        rec_thrs: (R,) the recall points (0, .01, ..., 1).
        cat_ids, cat_names: the K categories.
        area_labels: the A area ranges (``all``, ``small``, ``medium``, ``large``).
    """

    precision: np.ndarray
    rec_thrs: np.ndarray
    cat_ids: tuple[int, ...]
    cat_names: tuple[str, ...]
    area_labels: tuple[str, ...]

    def curve(self, category: int | None = None, area: str = "all") -> np.ndarray:
        """(7, R) curves of category index ``category``, or their mean over the categories
        with ground truth of that area when None; zeros when there is none."""
        a = self.area_labels.index(area)
        if category is not None:
            return np.clip(self.precision[:, :, category, a], 0.0, None)
        present = self.precision[0, 0, :, a] > -1
        if not present.any():
            return np.zeros(self.precision.shape[:2])
        return self.precision[:, :, present, a].mean(axis=2)

    def aps(self, category: int | None = None, area: str = "all") -> dict[str, float]:
        """``{curve: AP}`` of one category (index) or overall."""
        return {name: float(v) for name, v in zip(CURVES, self.curve(category, area).mean(1))}

    def summary(self) -> dict[str, Any]:
        """``{"overall": {area: {curve: AP}}, "per_category": {name: {area: {...}}}}``; a
        category without ground truth of an area gets None there."""
        per_category: dict[str, Any] = {}
        for k, name in enumerate(self.cat_names):
            per_category[name] = {
                area: (self.aps(k, area) if self.precision[0, 0, k, a] > -1 else None)
                for a, area in enumerate(self.area_labels)}
        return {"overall": {area: self.aps(None, area) for area in self.area_labels},
                "per_category": per_category}


def analyze_errors(
    coco_gt: COCO, results: list[dict[str, Any]], *, cat_ids: Sequence[int] | None = None,
    max_det: int = 100,
) -> ErrorAnalysis:
    """The error-analysis curves of box ``results`` against ``coco_gt``.

    Args:
        coco_gt: the ground truth; ``supercategory`` of its categories defines ``Sim``
            (a category without one is its own).
        results: COCO box results (``image_id``, ``category_id``, ``bbox``, ``score``).
        cat_ids: categories to analyse; all of the ground truth's when None.
        max_det: detections per image.

    Raises:
        ResultsError: a result that cannot be evaluated (named).
    """
    columns = check_results(results, coco_gt, "bbox")
    cats = sorted(coco_gt.getCatIds()) if cat_ids is None else [int(c) for c in cat_ids]
    img_ids = sorted(coco_gt.getImgIds())
    base, _, meta = evaluate_boxes(coco_gt, columns, img_ids=img_ids, cat_ids=cats,
                                   max_dets=[max_det], use_cats=True, iou_thrs=_IOUS)
    precision = np.zeros((len(CURVES), *base.shape[1:4]))
    precision[:3] = base[:, :, :, :, 0]
    for k, cat in enumerate(cats):
        for row, same_super in ((3, True), (4, False)):
            precision[row, :, k] = _forgiving_confusion(coco_gt, columns, cat, same_super,
                                                        img_ids, max_det)
    precision[5] = np.where(precision[4] > 0, 1.0, np.where(precision[4] < 0, -1.0, 0.0))
    precision[6] = np.where(precision[0] < 0, -1.0, 1.0)
    names = tuple(str(coco_gt.cats[c].get("name", c)) for c in cats)
    return ErrorAnalysis(precision=precision, rec_thrs=np.asarray(Params().recThrs),
                         cat_ids=tuple(cats), cat_names=names,
                         area_labels=tuple(meta["area_labels"]))


def _forgiving_confusion(coco_gt: COCO, columns: BoxColumns, cat: int, same_super: bool,
                         img_ids: list[int], max_det: int) -> np.ndarray:
    """(R, A) precision of category ``cat`` at IoU .1 with the ground truth of the confusable
    classes (its supercategory's, or all) turned into ignored regions of ``cat``.

    Only the images where ``cat`` has detections need the confusable boxes (elsewhere nothing
    could match them), which keeps this fast on large datasets.
    """
    confusable = _confusable(coco_gt, cat, same_super)
    own = columns.category_id == cat
    annotations = [coco_gt.anns[i] for i in coco_gt.getAnnIds(catIds=[cat])]
    for image_id in np.unique(columns.image_id[own]).tolist():
        annotations += [{**ann, "category_id": cat, "iscrowd": 1}
                        for ann in coco_gt.imgToAnns.get(image_id, [])
                        if ann["category_id"] in confusable]
    gt = make_coco({**coco_gt.dataset, "annotations": annotations})
    subset = BoxColumns(image_id=columns.image_id[own], category_id=columns.category_id[own],
                        score=columns.score[own], bbox=columns.bbox[own])
    precision, _, _ = evaluate_boxes(gt, subset, img_ids=img_ids, cat_ids=[cat],
                                     max_dets=[max_det], use_cats=True, iou_thrs=[0.1])
    return precision[0, :, 0, :, 0]


def _confusable(coco_gt: COCO, cat: int, same_super: bool) -> set[int]:
    if not same_super:
        return {int(c) for c in coco_gt.cats if int(c) != cat}
    group = coco_gt.cats[cat].get("supercategory")
    if group is None:
        return set()
    return {int(c) for c, info in coco_gt.cats.items()
            if int(c) != cat and info.get("supercategory") == group}
