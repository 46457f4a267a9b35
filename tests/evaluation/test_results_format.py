"""Instances -> COCO result dicts, RLE encoding, results files and their checks."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from pycocotools import mask as mask_util

from detbox.evaluation.coco_scoring import load_coco_gt
from detbox.evaluation.results import (
    ResultsError,
    check_results,
    format_id_ranges,
    instances_to_coco_results,
    load_results,
    masks_to_rles,
    write_results,
)
from detbox.structures.instances import Instances

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


def _random_masks(n: int, h: int = 37, w: int = 53, seed: int = 0) -> torch.Tensor:
    return torch.rand((n, h, w), generator=torch.Generator().manual_seed(seed)) > 0.6


def test_masks_to_rles_matches_per_mask_encoding():
    masks = _random_masks(5)
    rles = masks_to_rles(masks)
    for mask, rle in zip(masks.numpy(), rles, strict=True):
        expected = mask_util.encode(np.asfortranarray(mask.astype(np.uint8)))
        assert rle == {"size": [37, 53], "counts": expected["counts"].decode("ascii")}
        assert (mask_util.decode(rle) == mask).all()


def test_masks_to_rles_of_a_strided_view():
    masks = _random_masks(6)
    view = masks[::2, 1:, ::3]
    assert masks_to_rles(view) == masks_to_rles(view.contiguous())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_masks_to_rles_on_cuda_equals_cpu():
    masks = _random_masks(4)
    assert masks_to_rles(masks.cuda()) == masks_to_rles(masks)


def test_masks_to_rles_accepts_uint8_and_rejects_probabilities():
    masks = _random_masks(2)
    assert masks_to_rles(masks.to(torch.uint8) * 255) == masks_to_rles(masks)
    assert masks_to_rles(torch.zeros((0, 4, 4), dtype=torch.bool)) == []
    with pytest.raises(TypeError, match="threshold"):
        masks_to_rles(masks.float())
    with pytest.raises(ValueError, match=r"\(N, H, W\)"):
        masks_to_rles(masks[0])


def test_instances_to_coco_results_boxes_labels_scores_masks():
    instances = Instances(
        boxes=torch.tensor([[10.0, 20.0, 30.0, 60.0], [0.5, 1.5, 2.5, 4.0]]),
        labels=torch.tensor([1, 0]),
        scores=torch.tensor([0.9, 0.25]),
        masks=_random_masks(2),
    )
    results = instances_to_coco_results(np.int64(7), instances, cat_ids=[4, 11])
    assert [r["image_id"] for r in results] == [7, 7]
    assert type(results[0]["image_id"]) is int
    assert [r["category_id"] for r in results] == [11, 4]
    assert results[0]["bbox"] == [10.0, 20.0, 20.0, 40.0]
    assert results[1]["bbox"] == pytest.approx([0.5, 1.5, 2.0, 2.5])
    assert results[0]["score"] == pytest.approx(0.9)
    assert results[1]["segmentation"] == masks_to_rles(instances.masks)[1]
    boxes_only = instances_to_coco_results(7, instances, [4, 11], with_masks=False)
    assert "segmentation" not in boxes_only[0]
    json.dumps(results)  # plain Python types only


def test_instances_to_coco_results_edge_cases():
    assert instances_to_coco_results(1, Instances.empty(with_scores=True), [1]) == []
    boxes = torch.tensor([[0.0, 0.0, 1.0, 1.0]])
    with pytest.raises(ValueError, match="scores"):
        instances_to_coco_results(1, Instances(boxes, torch.tensor([0])), [1])
    with pytest.raises(ValueError, match=r"labels must lie in 0\.\.0"):
        instances_to_coco_results(1, Instances(boxes, torch.tensor([1]), torch.ones(1)), [1])


def test_write_results_round_trip_and_no_temp_files(tmp_path):
    results = [{"image_id": 1, "category_id": 2, "bbox": [1.0, 2.0, 3.0, 4.0], "score": 0.5}]
    path = tmp_path / "out" / "results.json"
    write_results(path, results)
    assert load_results(path) == results
    assert [p.name for p in path.parent.iterdir()] == ["results.json"]


def test_format_id_ranges():
    assert format_id_ranges({5, 1, 2, 3, 9, 10}) == "1-3, 5, 9-10"
    assert format_id_ranges([7]) == "7"
    assert format_id_ranges(set()) == "none"


GT = {
    "images": [{"id": 1, "width": 8, "height": 6}],
    "categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}, {"id": 4, "name": "c"}],
    "annotations": [],
}
GOOD = {"image_id": 1, "category_id": 2, "bbox": [0.0, 0.0, 2.0, 2.0], "score": 0.5}
RLE = {"size": [6, 8], "counts": "0"}


@pytest.mark.parametrize(
    ("change", "iou_type", "message"),
    [
        ({"image_id": 99}, "bbox", "result #1 has image_id 99, which is not an image in the GT"),
        ({"image_id": "1"}, "bbox", "has image_id '1'"),
        ({"category_id": 3}, "bbox", "has category_id 3, .* valid ids: 1-2, 4"),
        ({"bbox": None}, "bbox", "has no 'bbox', which bbox evaluation needs"),
        ({"bbox": [1, 2, 3]}, "bbox", r"expected \[x, y, width, height\]"),
        ({"score": "high"}, "bbox", "has score 'high'"),
        ({"score": None}, "bbox", "has no 'score'"),
        ({}, "segm", "has no 'segmentation', which segm evaluation needs"),
        ({"segmentation": [[0, 0, 1, 1, 2, 0]]}, "segm", "not a compressed RLE"),
        ({"segmentation": {"size": [8, 6], "counts": "0"}}, "segm", r"size \[8, 6\], but image 1"),
    ],
)
def test_check_results_names_the_problem(change, iou_type, message):
    bad = {k: v for k, v in {**GOOD, **change}.items() if v is not None}
    results = [dict(GOOD, segmentation=RLE), bad]
    with pytest.raises(ResultsError, match=message):
        check_results(results, load_coco_gt(GT), iou_type)


def test_check_results_accepts_good_results_and_proposals_with_any_category():
    coco_gt = load_coco_gt(GT)
    check_results([], coco_gt, "bbox")
    check_results([dict(GOOD, segmentation=RLE)], coco_gt, "segm")
    check_results([dict(GOOD, category_id=77)], coco_gt, "proposal")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ({"annotations": []}, "must hold a JSON list .* got an object .is it a ground-truth file"),
        ([GOOD, 3], "result #1 is a number, not an object"),
    ],
)
def test_load_results_wants_a_list_of_objects(tmp_path, content, message):
    path = tmp_path / "r.json"
    path.write_text(json.dumps(content))
    with pytest.raises(ResultsError, match=message):
        load_results(path)


def test_load_results_missing_or_not_json(tmp_path):
    with pytest.raises(ResultsError, match=r"results file '.*nope\.json' does not exist"):
        load_results(tmp_path / "nope.json")
    path = tmp_path / "r.json"
    path.write_text("[{]")
    with pytest.raises(ResultsError, match="is not valid JSON"):
        load_results(path)


def test_mask_scoring_detections_rank_masks_by_score_times_iou():
    import numpy as np
    from pycocotools.coco import COCO

    from detbox.evaluation import evaluate_coco

    masks = torch.zeros((2, 20, 20), dtype=torch.bool)
    masks[0, 2:10, 2:10] = True  # matches the GT mask exactly
    masks[1, 2:10, 2:9] = True  # a worse mask with a higher box score
    instances = Instances(boxes=torch.tensor([[2.0, 2, 10, 10], [2.0, 2, 9, 10]]),
                          labels=torch.tensor([0, 0]), scores=torch.tensor([0.5, 0.9]),
                          masks=masks, mask_iou=torch.tensor([1.0, 0.2]))
    results = instances_to_coco_results(1, instances, [1])
    assert [r["mask_score"] for r in results] == pytest.approx([0.5, 0.18])

    import pycocotools.mask as mask_util
    gt_mask = np.zeros((20, 20), dtype=np.uint8, order="F")
    gt_mask[2:10, 2:10] = 1
    rle = mask_util.encode(gt_mask)
    rle["counts"] = rle["counts"].decode()
    coco = COCO()
    coco.dataset = {"images": [{"id": 1, "width": 20, "height": 20}],
                    "categories": [{"id": 1, "name": "x"}],
                    "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "iscrowd": 0,
                                     "bbox": [2, 2, 8, 8], "area": 64, "segmentation": rle}]}
    coco.createIndex()
    # AP over IoU 0.50:0.95: the worse mask (IoU 0.875) misses the strictest thresholds.
    ranked_by_mask_score = evaluate_coco(coco, results, "segm").stats[0]
    plain = [{k: v for k, v in r.items() if k != "mask_score"} for r in results]
    ranked_by_box_score = evaluate_coco(coco, plain, "segm").stats[0]
    assert ranked_by_mask_score == pytest.approx(1.0)
    assert ranked_by_box_score == pytest.approx(0.9)
