"""Confusion matrix counts on hand-made detections; PR curves from COCOeval's precision."""

import numpy as np
import torch

from detbox.analysis.eval_plots import (
    coco_precision,
    confusion_matrix,
    gt_from_coco,
    plot_confusion_matrix,
    plot_pr_curves,
)
from detbox.evaluation import load_coco_gt
from detbox.structures import Instances

PNG = b"\x89PNG\r\n\x1a\n"


def _gt(boxes, labels):
    return torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4), torch.tensor(labels).long()


def _dets(boxes, labels, scores):
    return Instances(boxes=torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
                     labels=torch.tensor(labels).long(), scores=torch.tensor(scores).float())


def test_confusion_matrix_counts(tmp_path):
    a, b, c = [0, 0, 10, 10], [20, 20, 30, 30], [40, 40, 50, 50]
    gts = [_gt([a, b, c], [0, 1, 2]), _gt([], []), _gt([a], [0]),
           _gt([a, [1, 0, 11, 10]], [0, 1])]
    predictions = [
        _dets([a, b, a, [60, 60, 70, 70], c], [0, 2, 0, 1, 2], [0.9, 0.8, 0.7, 0.6, 0.1]),
        _dets([[0, 0, 5, 5]], [1], [0.5]),
        _dets([], [], []),
        # Overlaps both ground-truth boxes enough: the one of its own class is taken.
        _dets([a], [1], [0.9]),
    ]
    matrix = confusion_matrix(gts, predictions, num_classes=3, score_thr=0.3, iou_thr=0.5)
    expected = np.array([
        [1, 0, 0, 2],   # circle: found once, missed in images 3 and 4
        [0, 1, 1, 0],   # square: called a triangle once, found once
        [0, 0, 0, 1],   # triangle: its only detection scores below the threshold
        [1, 2, 0, 0],   # background: a duplicate circle, two squares on nothing
    ])
    np.testing.assert_array_equal(matrix, expected)
    out = plot_confusion_matrix(matrix, ["circle", "square", "triangle"], tmp_path / "cm.png")
    assert out.read_bytes()[:8] == PNG


def _coco():
    images = [{"id": i, "width": 100, "height": 100, "file_name": f"{i}.png"} for i in (1, 2)]
    anns = [
        {"id": 1, "image_id": 1, "category_id": 7, "bbox": [10, 10, 20, 20], "area": 400,
         "iscrowd": 0},
        {"id": 2, "image_id": 2, "category_id": 7, "bbox": [50, 50, 30, 30], "area": 900,
         "iscrowd": 0},
        {"id": 3, "image_id": 2, "category_id": 8, "bbox": [0, 0, 30, 30], "area": 900,
         "iscrowd": 0},
        {"id": 4, "image_id": 1, "category_id": 8, "bbox": [60, 0, 30, 30], "area": 900,
         "iscrowd": 1},
    ]
    cats = [{"id": 7, "name": "seven"}, {"id": 8, "name": "eight"}, {"id": 9, "name": "nine"}]
    return load_coco_gt({"images": images, "annotations": anns, "categories": cats})


def test_pr_curves_from_coco_precision(tmp_path):
    coco = _coco()
    results = [{"image_id": 1, "category_id": 7, "bbox": [10, 10, 20, 20], "score": 0.9},
               {"image_id": 2, "category_id": 7, "bbox": [50, 50, 30, 30], "score": 0.8},
               {"image_id": 2, "category_id": 8, "bbox": [70, 70, 10, 10], "score": 0.7}]
    precision, iou_thrs, recall = coco_precision(coco, results, [1, 2], [7, 8, 9])
    assert precision.shape == (10, 101, 3) and len(iou_thrs) == 10 and recall[-1] == 1.0
    assert (precision[:, :, 0] == 1).all()   # both "seven" boxes found exactly, nothing else
    assert (precision[:, :, 1] == 0).all()   # "eight": the only detection misses
    assert (precision[:, :, 2] == -1).all()  # "nine": no ground truth
    out = plot_pr_curves(precision, iou_thrs, recall, ["seven", "eight", "nine"],
                         tmp_path / "pr.png")
    assert out.read_bytes()[:8] == PNG


def test_gt_from_coco_skips_crowds_and_maps_labels():
    (boxes1, labels1), (boxes2, labels2) = gt_from_coco(_coco(), [1, 2], [7, 8])
    assert boxes1.tolist() == [[10, 10, 30, 30]] and labels1.tolist() == [0]
    assert sorted(labels2.tolist()) == [0, 1]
