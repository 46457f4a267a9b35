"""VOCMetric against a small, independent, loop-based VOC AP written here."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from detbox.apis.evaluate import MetricGroup, build_evaluator
from detbox.data.records import make_coco
from detbox.errors import ConfigError
from detbox.evaluation import CocoMetric, VOCMetric
from detbox.structures import DetSample, Instances

NUM_CLASSES = 4  # class 3 never has ground truth


def iou(a, b) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - w * h
    return w * h / union


def reference_ap(gts, dets, cls, iou_thr, eleven_points):
    """VOC AP of one class: ``gts[img] = [(box, label, difficult)]``,
    ``dets = [(img, box, score, label)]``."""
    used = {img: [False] * len(objs) for img, objs in gts.items()}
    npos = sum(1 for objs in gts.values() for _, label, diff in objs if label == cls and not diff)
    mine = sorted((d for d in dets if d[3] == cls), key=lambda d: -d[2])
    flags = []  # True: TP, False: FP
    for img, box, _, _ in mine:
        best, best_j = -1.0, -1
        for j, (gt_box, label, _) in enumerate(gts[img]):
            if label == cls and iou(box, gt_box) > best:
                best, best_j = iou(box, gt_box), j
        if best >= iou_thr and gts[img][best_j][2]:
            continue
        if best >= iou_thr and not used[img][best_j]:
            used[img][best_j] = True
            flags.append(True)
        else:
            flags.append(False)
    if npos == 0:
        return None
    recalls, precisions, tp = [], [], 0
    for k, flag in enumerate(flags, start=1):
        tp += flag
        recalls.append(tp / npos)
        precisions.append(tp / k)
    if eleven_points:
        return sum(max([p for r, p in zip(recalls, precisions) if r >= t / 10], default=0.0)
                   for t in range(11)) / 11
    ap, previous = 0.0, 0.0
    for i, r in enumerate(recalls):
        ap += (r - previous) * max(precisions[i:])
        previous = r
    return ap


def random_scene(seed: int = 0):
    rng = np.random.default_rng(seed)
    gts, dets = {}, []
    for img in range(20):
        objs = []
        for _ in range(rng.integers(0, 5)):
            x, y = rng.uniform(0, 80, 2)
            box = [x, y, x + rng.uniform(8, 40), y + rng.uniform(8, 40)]
            objs.append((box, int(rng.integers(0, 3)), bool(rng.random() < 0.2)))
        gts[img] = objs
        for box, label, _ in objs:
            for _ in range(rng.integers(0, 3)):  # 0 to 2 noisy detections per object
                jitter = rng.normal(0, 2, 4)
                wrong = rng.random() < 0.1
                dets.append((img, list(np.array(box) + jitter), float(rng.uniform(0.2, 1)),
                             int(rng.integers(0, NUM_CLASSES)) if wrong else label))
        for _ in range(rng.integers(0, 3)):  # background false positives
            x, y = rng.uniform(0, 90, 2)
            dets.append((img, [x, y, x + 10, y + 10], float(rng.uniform(0, 0.8)),
                         int(rng.integers(0, NUM_CLASSES))))
    return gts, dets


def arrays(gts, dets, img):
    normal = [(b, lab) for b, lab, d in gts[img] if not d]
    difficult = [(b, lab) for b, lab, d in gts[img] if d]
    mine = [d for d in dets if d[0] == img]
    return (np.array([b for b, _ in normal]).reshape(-1, 4), np.array([lab for _, lab in normal]),
            np.array([d[1] for d in mine]).reshape(-1, 4), np.array([d[2] for d in mine]),
            np.array([d[3] for d in mine]), np.array([b for b, _ in difficult]).reshape(-1, 4),
            np.array([lab for _, lab in difficult]))


@pytest.mark.parametrize("mode", ["area", "11points"])
@pytest.mark.parametrize("iou_thr", [0.5, 0.75])
def test_matches_the_reference_implementation(mode, iou_thr):
    gts, dets = random_scene()
    metric = VOCMetric(iou_thr=iou_thr, mode=mode, class_names=list("abcd"))
    for img in gts:
        gt_boxes, gt_labels, boxes, scores, labels, ign, ign_labels = arrays(gts, dets, img)
        metric.add_image(gt_boxes, gt_labels, boxes, scores, labels, ign, ign_labels)
    result = metric.evaluate()
    expected = [reference_ap(gts, dets, c, iou_thr, mode == "11points") for c in range(4)]
    assert expected[3] is None and result["AP_per_class"]["d"] == -1.0
    for name, ap in zip("abc", expected):
        assert result["AP_per_class"][name] == pytest.approx(ap, abs=1e-12)
    assert result["mAP"] == pytest.approx(np.mean(expected[:3]), abs=1e-12)
    assert 0.2 < result["mAP"] < 0.95  # a scene with both hits and misses


def test_difficult_boxes_are_neither_true_nor_false_positives():
    metric = VOCMetric(class_names=["person"])
    gt = np.array([[0, 0, 10, 10]])
    difficult = np.array([[50, 50, 60, 60]])
    boxes = np.array([[50, 50, 60, 60], [0, 0, 10, 10], [20, 20, 30, 30]])
    metric.add_image(gt, [0], boxes, [0.9, 0.8, 0.7], [0, 0, 0], difficult, [0])
    assert metric.evaluate()["mAP"] == 1.0
    assert "person" in metric.report() and metric.results["person"]["num_dets"] == 2


def test_eleven_point_and_area_differ_on_a_known_curve():
    # TP, FP, TP with 2 objects: precision 1, 1/2, 2/3 at recall 1/2, 1/2, 1
    metric = VOCMetric(class_names=["x"], mode="area")
    gt = np.array([[0, 0, 10, 10], [20, 0, 30, 10]])
    boxes = np.array([[0, 0, 10, 10], [50, 50, 60, 60], [20, 0, 30, 10]])
    for mode, expected in (("area", 0.5 + 0.5 * 2 / 3), ("11points", (6 + 5 * 2 / 3) / 11)):
        metric.mode = mode
        metric.add_image(gt, [0, 0], boxes, [0.9, 0.8, 0.7], [0, 0, 0])
        assert metric.evaluate()["mAP"] == pytest.approx(expected)


def scene_as_coco(gts):
    images, annotations = [], []
    for img, objs in gts.items():
        images.append({"id": img + 1, "file_name": f"{img}.jpg", "width": 200, "height": 200})
        for box, label, difficult in objs:
            x1, y1, x2, y2 = box
            annotations.append({"id": len(annotations) + 1, "image_id": img + 1,
                                "category_id": 10 + label, "bbox": [x1, y1, x2 - x1, y2 - y1],
                                "area": (x2 - x1) * (y2 - y1), "iscrowd": int(difficult)})
    categories = [{"id": 10 + c, "name": "abcd"[c]} for c in range(NUM_CLASSES)]
    return make_coco({"images": images, "annotations": annotations, "categories": categories})


def batch(gts, dets, transform=None):
    samples, predictions = [], []
    for img in gts:
        gt_boxes, gt_labels, boxes, scores, labels, ignored, _ = arrays(gts, dets, img)
        gt = Instances(boxes=torch.tensor(gt_boxes, dtype=torch.float32),
                       labels=torch.tensor(gt_labels, dtype=torch.int64).reshape(-1))
        sample = DetSample(image_id=img + 1, file_name=f"{img}.jpg", ori_shape=(200, 200),
                           img_shape=(200, 200), gt=gt,
                           ignored_boxes=torch.tensor(ignored, dtype=torch.float32))
        if transform is not None:
            sample = transform(sample)
        samples.append(sample)
        predictions.append(Instances(boxes=torch.tensor(boxes), scores=torch.tensor(scores),
                                     labels=torch.tensor(labels, dtype=torch.int64)))
    return samples, predictions


def scaled_and_flipped(sample: DetSample) -> DetSample:
    """What Resize(x2) then a horizontal flip make of a sample's ground truth."""
    def forward(boxes):
        boxes = boxes * 2
        return torch.stack([400 - boxes[:, 2], boxes[:, 1], 400 - boxes[:, 0], boxes[:, 3]], 1)

    sample.gt.boxes = forward(sample.gt.boxes)
    sample.ignored_boxes = forward(sample.ignored_boxes)
    sample.img_shape, sample.scale_factor, sample.flip = (400, 400), (2.0, 2.0), "horizontal"
    return sample


def test_ground_truth_from_coco_or_from_transformed_samples():
    gts, dets = random_scene(1)
    from_coco = VOCMetric(coco_gt=scene_as_coco(gts), cat_ids=[10, 11, 12, 13])
    assert from_coco.class_names == list("abcd")
    from_coco.process(*batch(gts, dets))
    from_samples = VOCMetric(class_names=list("abcd"))
    from_samples.process(*batch(gts, dets, transform=scaled_and_flipped))
    a, b = from_coco.evaluate(), from_samples.evaluate()
    expected = [reference_ap(gts, dets, c, 0.5, False) for c in range(3)]
    assert a["mAP"] == pytest.approx(np.mean(expected))
    assert b["mAP"] == pytest.approx(a["mAP"], abs=1e-6)


class FakeDataset:
    def __init__(self, coco):
        self.coco, self.cat_ids, self.class_names = coco, [10, 11, 12, 13], list("abcd")


def test_build_evaluator_selects_voc_from_the_metric_names():
    gts, dets = random_scene(2)
    dataset = FakeDataset(scene_as_coco(gts))
    assert isinstance(build_evaluator(dataset, ["voc"]), VOCMetric)
    assert build_evaluator(dataset, ["voc07"]).mode == "11points"
    assert isinstance(build_evaluator(dataset, ["bbox"]), CocoMetric)
    group = build_evaluator(dataset, ["bbox", "mAP"])
    assert isinstance(group, MetricGroup)
    group.process(*batch(gts, dets))
    metrics = group.evaluate()
    assert {"bbox_mAP", "mAP", "AP_per_class"} <= set(metrics)
    with pytest.raises(ConfigError, match="choose one VOC metric"):
        build_evaluator(dataset, ["voc", "voc07"])


def test_bad_settings_are_config_errors():
    with pytest.raises(ConfigError, match="mode"):
        VOCMetric(mode="12points", class_names=["a"])
    with pytest.raises(ConfigError, match="class_names"):
        VOCMetric()
