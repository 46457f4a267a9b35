"""evaluate_coco against pycocotools run directly, on the real Penn-Fudan ground truth."""

from __future__ import annotations

import json

import numpy as np
import pytest

from detbox.errors import DatasetError
from detbox.evaluation.coco_scoring import check_gt_supports, evaluate_coco, load_coco_gt
from tests.evaluation.summary_lines import format_summary


@pytest.mark.parametrize("iou_type", ["bbox", "segm"])
def test_stats_equal_pycocotools(
    pennfudan_val, bbox_results, segm_results, reference_cocoeval, iou_type
):
    results = bbox_results if iou_type == "bbox" else segm_results
    expected, expected_lines = reference_cocoeval(pennfudan_val, results, iou_type)
    result = evaluate_coco(load_coco_gt(pennfudan_val), results, iou_type)
    assert np.abs(np.array(result.stats) - expected).max() <= 1e-9
    assert result.summary_lines == expected_lines
    assert 0.1 < result.stats[0] < 0.9  # the simulation is neither perfect nor hopeless
    assert result.num_images == 30 and result.num_detections == len(results)


def test_segm_with_more_than_255_masks_equals_pycocotools(
    pennfudan_val, segm_results, reference_cocoeval
):
    """pycocotools' mask ``area`` cannot take a list of more than 255 masks under NumPy 2; a
    real model's segm results run to thousands."""
    results = [dict(r, score=r["score"] * 0.5 ** copy)
               for copy in range(300 // len(segm_results) + 1) for r in segm_results]
    assert len(results) > 255
    expected, _ = reference_cocoeval(pennfudan_val, results, "segm")
    result = evaluate_coco(load_coco_gt(pennfudan_val), results, "segm")
    assert np.abs(np.array(result.stats) - expected).max() <= 1e-9


def test_segm_areas_come_from_masks_not_boxes(pennfudan_val, segm_results):
    """Boxes in segm results must not change the small/medium/large split."""
    coco_gt = load_coco_gt(pennfudan_val)
    with_boxes = evaluate_coco(coco_gt, segm_results, "segm").stats
    without = [{k: v for k, v in r.items() if k != "bbox"} for r in segm_results]
    assert evaluate_coco(coco_gt, without, "segm").stats == with_boxes


def test_results_are_not_modified(pennfudan_val, bbox_results):
    before = json.dumps(bbox_results)
    evaluate_coco(load_coco_gt(pennfudan_val), bbox_results, "bbox")
    assert json.dumps(bbox_results) == before


def test_proposal_is_class_agnostic_recall(pennfudan_val, bbox_results, reference_cocoeval):
    max_dets = (100, 300, 1000)
    expected, expected_lines = reference_cocoeval(
        pennfudan_val, bbox_results, "proposal", use_cats=False, max_dets=max_dets
    )
    coco_gt = load_coco_gt(pennfudan_val)
    result = evaluate_coco(coco_gt, bbox_results, "proposal", max_dets=max_dets)
    assert np.abs(np.array(result.stats) - expected).max() <= 1e-9
    assert result.summary_lines == expected_lines
    assert result.per_class == []


@pytest.mark.parametrize("max_dets", [(1, 10, 100), (100, 300, 1000)])
def test_format_summary_reproduces_pycocotools_lines(pennfudan_val, bbox_results, max_dets):
    iou_type = "bbox" if max_dets[0] == 1 else "proposal"
    result = evaluate_coco(load_coco_gt(pennfudan_val), bbox_results, iou_type, max_dets=max_dets)
    assert format_summary(result.stats, result.max_dets) == result.summary_lines


def test_per_class_ap_of_single_class_equals_summary(pennfudan_val, bbox_results):
    result = evaluate_coco(load_coco_gt(pennfudan_val), bbox_results, "bbox")
    (person,) = result.per_class
    assert (person.name, person.category_id, person.num_gt) == ("person", 1, 77)
    assert person.ap == pytest.approx(result.stats[0], abs=1e-12)
    assert person.ap50 == pytest.approx(result.stats[1], abs=1e-12)
    assert person.ap75 == pytest.approx(result.stats[2], abs=1e-12)


def test_zero_predictions_give_zero_not_a_crash(pennfudan_val):
    result = evaluate_coco(load_coco_gt(pennfudan_val), [], "segm")
    # Penn-Fudan val has people of every size, so every number is 0 rather than -1.
    assert result.stats == [0.0] * 12
    assert result.per_class[0].ap == 0.0 and result.per_class[0].num_gt == 77
    assert len(result.summary_lines) == 12


def _three_class_gt() -> dict:
    box = {"bbox": [10.0, 10.0, 20.0, 20.0], "area": 400.0, "iscrowd": 0}
    return {
        "images": [{"id": 1, "width": 64, "height": 64}, {"id": 2, "width": 64, "height": 64}],
        "categories": [{"id": i, "name": n} for i, n in ((3, "cat"), (5, "dog"), (9, "owl"))],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 3, **box},
            {"id": 2, "image_id": 2, "category_id": 5, **box},
            {"id": 3, "image_id": 2, "category_id": 5, **box, "iscrowd": 1},
        ],
    }


def test_per_class_rows_and_missing_ground_truth():
    coco_gt = load_coco_gt(_three_class_gt())
    results = [
        {"image_id": 1, "category_id": 3, "bbox": [10.0, 10.0, 20.0, 20.0], "score": 0.9},
        {"image_id": 2, "category_id": 5, "bbox": [40.0, 40.0, 10.0, 10.0], "score": 0.8},
        {"image_id": 2, "category_id": 9, "bbox": [10.0, 10.0, 20.0, 20.0], "score": 0.7},
    ]
    rows = {c.name: c for c in evaluate_coco(coco_gt, results, "bbox").per_class}
    assert [rows[n].category_id for n in ("cat", "dog", "owl")] == [3, 5, 9]
    assert rows["cat"].ap == pytest.approx(1.0) and rows["cat"].num_gt == 1
    assert rows["dog"].ap == 0.0 and rows["dog"].num_gt == 1  # the crowd does not count
    owl = rows["owl"]  # detected, but no ground truth: pycocotools' -1
    assert (owl.ap, owl.ap50, owl.ap75, owl.num_gt) == (-1, -1, -1, 0)


def test_cat_ids_and_names_restrict_and_rename():
    coco_gt = load_coco_gt(_three_class_gt())
    results = [{"image_id": 1, "category_id": 3, "bbox": [10.0, 10.0, 20.0, 20.0], "score": 0.9}]
    result = evaluate_coco(coco_gt, results, "bbox", cat_ids=[3], class_names=["kitty"])
    assert [(c.name, c.category_id) for c in result.per_class] == [("kitty", 3)]
    assert result.stats[0] == pytest.approx(1.0)


def test_load_coco_gt_errors(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        load_coco_gt(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{oops")
    with pytest.raises(DatasetError, match="is not valid JSON"):
        load_coco_gt(bad)
    with pytest.raises(DatasetError, match="has no 'categories' list"):
        load_coco_gt({"images": [], "annotations": []})
    with pytest.raises(DatasetError, match="must hold a COCO object"):
        bad.write_text("[]")
        load_coco_gt(bad)


def test_segm_needs_masks_in_ground_truth():
    coco_gt = load_coco_gt(_three_class_gt())
    check_gt_supports(coco_gt, "bbox")
    with pytest.raises(DatasetError, match="annotation 1 has no 'segmentation'"):
        check_gt_supports(coco_gt, "segm")
