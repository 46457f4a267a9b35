"""Class-agnostic recall at proposal numbers and IoU thresholds, computed by hand."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from detbox.apis.evaluate import build_evaluator
from detbox.data.coco import make_coco
from detbox.errors import ConfigError
from detbox.evaluation.recall import RecallMetric, greedy_match_ious, recalls
from detbox.structures import DetSample, Instances


def _ann(ann_id: int, image_id: int, box: list[float], crowd: int = 0) -> dict:
    x1, y1, x2, y2 = box
    return {"id": ann_id, "image_id": image_id, "category_id": 1, "iscrowd": crowd,
            "bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1)}


def _coco():
    images = [{"id": i, "file_name": f"{i}.png", "width": 40, "height": 40} for i in (1, 2)]
    anns = [_ann(1, 1, [0, 0, 10, 10]), _ann(2, 1, [20, 20, 30, 30]),
            _ann(3, 2, [0, 0, 20, 20]), _ann(4, 2, [25, 25, 35, 35], crowd=1)]
    return make_coco({"images": images, "annotations": anns,
                      "categories": [{"id": 1, "name": "thing"}]})


def _sample(image_id: int) -> DetSample:
    return DetSample(image_id=image_id, file_name=f"{image_id}.png", ori_shape=(40, 40),
                     img_shape=(40, 40), scale_factor=(1.0, 1.0))


# image 1: p1 meets A at IoU 0.5, p2 is B, p3 is A; scores put them in this order.
# image 2: a box on the crowd region only (the crowd box is not ground truth to find).
PREDICTIONS = {
    1: Instances(boxes=torch.tensor([[0, 0, 10, 10], [20, 20, 30, 30], [0, 0, 10, 5.]]),
                 scores=torch.tensor([0.2, 0.8, 0.9]), labels=torch.tensor([0, 0, 0])),
    2: Instances(boxes=torch.tensor([[25, 25, 35, 35.]]), scores=torch.tensor([0.5]),
                 labels=torch.tensor([0])),
}


def test_greedy_matching_takes_the_best_pair_first() -> None:
    ious = np.array([[0.9, 0.8], [0.85, 0.1]])
    assert greedy_match_ious(ious).tolist() == [0.9, 0.1]
    assert greedy_match_ious(np.zeros((2, 0))).tolist() == [0.0, 0.0]
    assert greedy_match_ious(np.array([[0.3], [0.6]])).tolist() == [0.0, 0.6]


def test_recall_table_by_hand() -> None:
    metric = RecallMetric(coco_gt=_coco(), proposal_nums=(1, 2, 3), iou_thrs=(0.5, 0.75))
    metric.process([_sample(1), _sample(2)], [PREDICTIONS[1], PREDICTIONS[2]])
    out = metric.evaluate()
    # 3 ground-truth boxes (A, B, C). Top 1: A at 0.5. Top 2: A at 0.5, B at 1. Top 3: A, B at 1.
    expected = {1: (1 / 3, 0.0), 2: (2 / 3, 1 / 3), 3: (2 / 3, 2 / 3)}
    for num, (at_50, at_75) in expected.items():
        assert out[f"recall@{num}@0.5"] == pytest.approx(at_50)
        assert out[f"recall@{num}@0.75"] == pytest.approx(at_75)
        assert out[f"AR@{num}"] == pytest.approx((at_50 + at_75) / 2)
    assert "recall" in metric.report()


def test_no_ground_truth_and_no_proposals() -> None:
    assert recalls([np.zeros((0, 4))], [np.zeros((0, 4))], [10], [0.5]).tolist() == [[0.0]]
    assert recalls([np.array([[0, 0, 5, 5.]])], [np.zeros((0, 4))], [10], [0.5]).tolist() == \
        [[0.0]]


def test_build_evaluator_adds_recall_next_to_voc() -> None:
    class Dataset:
        coco, cat_ids, class_names = _coco(), [1], ["thing"]

    evaluator = build_evaluator(Dataset(), ["voc", "recall"])
    evaluator.process([_sample(1), _sample(2)], [PREDICTIONS[1], PREDICTIONS[2]])
    out = evaluator.evaluate()
    assert out["recall@100@0.5"] == pytest.approx(2 / 3)
    assert "mAP" in out
    only = build_evaluator(Dataset(), ["recall"])
    assert isinstance(only, RecallMetric)


def test_bad_settings_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="iou_thrs"):
        RecallMetric(coco_gt=_coco(), iou_thrs=1.5)
    with pytest.raises(ConfigError, match="proposal_nums"):
        RecallMetric(coco_gt=_coco(), proposal_nums=(0,))
