"""COCO error analysis: every error type present once, each curve's AP moves where it must."""

from __future__ import annotations

import contextlib
import copy
import io

import numpy as np
import pytest
from pycocotools.cocoeval import COCOeval

from detbox.analysis.coco_errors import CURVES, analyze_errors
from detbox.data.coco import make_coco
from detbox.evaluation.coco_backends import run_cocoeval
from detbox.evaluation.coco_numpy import evaluate_boxes
from detbox.evaluation.results_file import check_results
from tests.evaluation.test_coco_numpy import random_set

CATEGORIES = [{"id": 1, "name": "cat", "supercategory": "animal"},
              {"id": 2, "name": "dog", "supercategory": "animal"},
              {"id": 3, "name": "car", "supercategory": "vehicle"}]
# Ground truth of image 1 (xyxy): four cats (a, b, c, f), a dog d and a car e.
GT = {"a": (1, [0, 0, 10, 10]), "b": (1, [20, 0, 30, 10]), "c": (1, [40, 0, 50, 10]),
      "f": (1, [60, 0, 70, 10]), "d": (2, [0, 40, 10, 50]), "e": (3, [20, 40, 30, 50])}
# "cat" detections, one error of each kind, confusions and background outranking b and c.
DETECTIONS = [
    ([0, 0, 10, 10], 0.9),    # a: exact
    ([0, 40, 10, 50], 0.85),  # on the dog: similar-class confusion
    ([20, 40, 30, 50], 0.8),  # on the car: other-class confusion
    ([80, 80, 90, 90], 0.75),  # background
    ([20, 0, 30, 6], 0.7),    # b at IoU 0.6: a hit at .50, not at .75
    ([40, 0, 50, 3], 0.6),    # c at IoU 0.3: mislocalised, a hit only at .10
]                             # f: never found (false negative)


def _xywh(box):
    return [box[0], box[1], box[2] - box[0], box[3] - box[1]]


def _gt():
    anns = [{"id": i + 1, "image_id": 1, "category_id": cat, "bbox": _xywh(box),
             "area": float((box[2] - box[0]) * (box[3] - box[1])), "iscrowd": 0}
            for i, (cat, box) in enumerate(GT.values())]
    return make_coco({"images": [{"id": 1, "width": 100, "height": 100}],
                      "annotations": anns, "categories": copy.deepcopy(CATEGORIES)})


def _results():
    return [{"image_id": 1, "category_id": 1, "bbox": _xywh(box), "score": score}
            for box, score in DETECTIONS]


def reference_ap(hits: list[bool], num_gt: int) -> float:
    """COCO's 101-point interpolated AP of detections in score order (True: a hit)."""
    tp = np.cumsum(hits)
    recall = tp / num_gt
    precision = tp / np.arange(1, len(hits) + 1)
    precision = np.maximum.accumulate(precision[::-1])[::-1]
    points = np.linspace(0, 1, 101)
    values = [precision[np.searchsorted(recall, r, side="left")]
              if np.searchsorted(recall, r, side="left") < len(recall) else 0.0 for r in points]
    return float(np.mean(values))


def test_each_error_is_forgiven_by_its_own_curve() -> None:
    analysis = analyze_errors(_gt(), _results())
    aps = analysis.aps(category=0)  # "cat"
    # Order: a, dog, car, background, b, c; 4 cat boxes to find.
    expected = {
        "C75": reference_ap([1, 0, 0, 0, 0, 0], 4),
        "C50": reference_ap([1, 0, 0, 0, 1, 0], 4),  # b counts from IoU .50
        "Loc": reference_ap([1, 0, 0, 0, 1, 1], 4),  # c counts only at IoU .10
        "Sim": reference_ap([1, 0, 0, 1, 1], 4),     # the dog confusion is no longer an FP
        "Oth": reference_ap([1, 0, 1, 1], 4),        # nor the car confusion
        "BG": 76 / 101,                              # precision 1 up to recall .75
        "FN": 1.0,
    }
    assert aps == pytest.approx(expected, abs=1e-12)
    values = [aps[c] for c in CURVES]
    assert all(x < y for x, y in zip(values, values[1:]))  # each fix raises AP


def test_curves_only_move_for_errors_present() -> None:
    results = _results()
    without_confusions = [r for r in results if r["bbox"][1] != 40]
    aps = analyze_errors(_gt(), without_confusions).aps(category=0)
    assert aps["Sim"] == aps["Oth"] == aps["Loc"]
    car_only = analyze_errors(_gt(), [r for r in results if r["score"] != 0.85]).aps(0)
    assert car_only["Sim"] == car_only["Loc"] < car_only["Oth"]  # a car is no animal


def test_per_category_overall_and_classes_without_detections() -> None:
    analysis = analyze_errors(_gt(), _results())
    dog = analysis.aps(category=1)
    assert dog["C50"] == dog["Oth"] == dog["BG"] == 0.0 and dog["FN"] == 1.0
    overall = analysis.aps()
    for curve in CURVES:
        per_cat = [analysis.aps(k)[curve] for k in range(3)]
        assert overall[curve] == pytest.approx(np.mean(per_cat))
    summary = analysis.summary()
    assert summary["per_category"]["cat"]["large"] is None  # no large cat in the ground truth
    assert summary["overall"]["all"] == overall


def test_the_plain_curves_equal_cocoeval() -> None:
    gt, results = random_set(3)
    analysis = analyze_errors(make_coco(copy.deepcopy(gt)), copy.deepcopy(results))
    acc = run_cocoeval(make_coco(copy.deepcopy(gt)), copy.deepcopy(results), "bbox",
                       img_ids=sorted(i["id"] for i in gt["images"]),
                       cat_ids=sorted(c["id"] for c in gt["categories"]),
                       max_dets=(1, 10, 100), use_cats=True, backend="numpy")
    for row, column in ((0, 5), (1, 0)):  # IoU .75 and .50 among COCO's .50:.05:.95
        assert np.array_equal(analysis.precision[row], acc.precision[column, :, :, :, -1])


@pytest.mark.parametrize("seed", range(2))
def test_iou_thresholds_option_equals_pycocotools(seed: int) -> None:
    gt, results = random_set(seed)
    coco_gt = make_coco(copy.deepcopy(gt))
    columns = check_results(copy.deepcopy(results), coco_gt, "bbox")
    ours, recall, _ = evaluate_boxes(
        coco_gt, columns, img_ids=sorted(coco_gt.getImgIds()),
        cat_ids=sorted(coco_gt.getCatIds()), max_dets=[100], use_cats=True,
        iou_thrs=[0.75, 0.5, 0.1])
    with contextlib.redirect_stdout(io.StringIO()):
        coco_dt = make_coco(copy.deepcopy(gt)).loadRes(copy.deepcopy(results))
        reference = COCOeval(make_coco(copy.deepcopy(gt)), coco_dt, "bbox")
        reference.params.maxDets = [100]
        reference.params.iouThrs = np.array([0.75, 0.5, 0.1])
        reference.evaluate()
        reference.accumulate()
    assert np.array_equal(ours, reference.eval["precision"])
    assert np.array_equal(recall, reference.eval["recall"])


def test_confusion_curves_equal_a_plain_rebuild_of_the_ground_truth() -> None:
    """Sim / Oth against the definition: every confusable box of the whole dataset made an
    ignored region of the analysed class (the module only rebuilds the images it needs)."""
    gt, results = random_set(4)
    for c in gt["categories"]:
        c["supercategory"] = "low" if c["id"] <= 2 else "high"
    coco_gt = make_coco(copy.deepcopy(gt))
    analysis = analyze_errors(coco_gt, copy.deepcopy(results))
    columns = check_results(copy.deepcopy(results), coco_gt, "bbox")
    for k, cat in enumerate(analysis.cat_ids):
        group = {c["id"] for c in gt["categories"]
                 if c["supercategory"] == coco_gt.cats[cat]["supercategory"]}
        for row, confusable in ((3, group - {cat}), (4, set(coco_gt.cats) - {cat})):
            anns = [dict(a, category_id=cat, iscrowd=1) if a["category_id"] in confusable
                    else a for a in gt["annotations"]]
            rebuilt = make_coco({**gt, "annotations": anns})
            expected, _, _ = evaluate_boxes(rebuilt, columns, img_ids=sorted(coco_gt.imgs),
                                            cat_ids=[cat], max_dets=[100], use_cats=True,
                                            iou_thrs=[0.1])
            assert np.array_equal(analysis.precision[row, :, k], expected[0, :, 0, :, 0])
