"""WIDER FACE easy / medium / hard AP: against a loop-by-loop reference of the official steps,
a hand-computed case, and a perfect prediction through the converted dataset."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from detbox.apis.evaluate import build_evaluator
from detbox.data import VOCDataset, WIDERFaceDataset
from detbox.dataset_converters.wider_face import wider_face_to_voc
from detbox.errors import ConfigError, DatasetError
from detbox.evaluation.voc_metric import average_precision
from detbox.evaluation.wider_face_metric import (
    WiderFaceGT,
    WIDERFaceMetric,
    image_pr,
    read_wider_face_gt,
    wider_face_ap,
)
from detbox.structures import DetSample, Instances
from tests.dataset_converters.wider_face_layout import KEEP, write_wider_face

pytest.importorskip("scipy", reason="the WIDER FACE .mat ground truth is read with scipy")


# ---- a straightforward reference of the official evaluation, one detection at a time ----

def ref_iou(a, b):
    ax2, ay2, bx2, by2 = a[0] + a[2], a[1] + a[3], b[0] + b[2], b[1] + b[3]
    iw = min(ax2, bx2) - max(a[0], b[0]) + 1
    ih = min(ay2, by2) - max(a[1], b[1]) + 1
    if iw <= 0 or ih <= 0:
        return 0.0
    union = (a[2] + 1) * (a[3] + 1) + (b[2] + 1) * (b[3] + 1) - iw * ih
    return iw * ih / union


def ref_image(dets, gt, counted, thr=0.5):
    recall = np.zeros(len(gt))
    proposal = np.ones(len(dets))
    found = np.zeros(len(dets))
    for h, det in enumerate(dets):
        ious = [ref_iou(det, g) for g in gt]
        j = int(np.argmax(ious))
        if ious[j] >= thr:
            if not counted[j]:
                recall[j] = -1
                proposal[h] = -1
            elif recall[j] == 0:
                recall[j] = 1
        found[h] = (recall == 1).sum()
    return found, proposal


def ref_ap(detections, gt, setting, num_thresholds=1000):
    scores = np.concatenate([d[:, 4] for d in detections.values()])
    low, high = scores.min(), scores.max()
    curve, faces = np.zeros((num_thresholds, 2)), 0
    for name, counted in gt.counted[setting].items():
        faces += counted.sum()
        dets = detections.get(name, np.zeros((0, 5)))
        if len(dets) == 0 or len(gt.boxes[name]) == 0:
            continue
        dets = dets[np.argsort(-dets[:, 4], kind="stable")]
        normed = (dets[:, 4] - low) / (high - low)
        found, proposal = ref_image(dets[:, :4], gt.boxes[name], counted)
        for t in range(num_thresholds):
            above = np.where(normed >= 1 - (t + 1) / num_thresholds)[0]
            if len(above):
                last = above[-1]
                curve[t] += [(proposal[: last + 1] == 1).sum(), found[last]]
    precision = np.array([f / p if p else 0.0 for p, f in curve])
    return average_precision(curve[:, 1] / faces, precision, "area")


def random_case(seed):
    rng = np.random.default_rng(seed)
    boxes, counted, detections = {}, {"easy": {}, "medium": {}, "hard": {}}, {}
    for i in range(6):
        g = rng.integers(0, 6)
        gt = np.concatenate([rng.uniform(0, 80, (g, 2)), rng.uniform(4, 30, (g, 2))], axis=1)
        boxes[f"im{i}"] = gt
        hard = rng.random(g) < 0.85
        counted["hard"][f"im{i}"] = hard
        counted["medium"][f"im{i}"] = hard & (rng.random(g) < 0.7)
        counted["easy"][f"im{i}"] = counted["medium"][f"im{i}"] & (rng.random(g) < 0.6)
        near = gt[rng.integers(0, max(g, 1), rng.integers(0, 8))] if g else np.zeros((0, 4))
        jittered = near + rng.normal(0, 2.0, near.shape)
        noise = np.concatenate([rng.uniform(0, 80, (3, 2)), rng.uniform(4, 30, (3, 2))], axis=1)
        dets = np.concatenate([jittered, noise])
        detections[f"im{i}"] = np.concatenate([dets, rng.random((len(dets), 1))], axis=1)
    return detections, WiderFaceGT(boxes, counted)


@pytest.mark.parametrize("seed", range(5))
def test_matches_the_reference_on_random_cases(seed):
    detections, gt = random_case(seed)
    for setting in ("easy", "medium", "hard"):
        assert wider_face_ap(detections, gt, setting) == pytest.approx(
            ref_ap(detections, gt, setting), abs=1e-12)
    name = next(n for n, b in gt.boxes.items() if len(b))
    dets = detections[name][np.argsort(-detections[name][:, 4], kind="stable")]
    found, proposal = image_pr(dets[:, :4], gt.boxes[name], gt.counted["hard"][name])
    ref_found, ref_proposal = ref_image(dets[:, :4], gt.boxes[name], gt.counted["hard"][name])
    np.testing.assert_array_equal(found, ref_found)
    np.testing.assert_array_equal(proposal, ref_proposal == 1)


def test_hand_computed_case():
    """Faces A, B (count in easy and hard) and C (hard only); detections in score order hit
    A, C, nothing, B. Normalised scores 1, 2/3, 1/3, 0.

    easy (C ignored): (P, R) = (1, 1/2) down to the third detection, then (1/2, 1/2), and with
    the fourth (2/3, 1): AP = 1/2 * 1 + 1/2 * 2/3 = 5/6.
    hard: (1, 1/3), (1, 2/3), (2/3, 2/3), (3/4, 1): AP = 1/3 + 1/3 + 1/3 * 3/4 = 11/12.
    medium (only A counts; the hits on B and C are ignored): AP = 1.
    """
    gt_boxes = np.array([[10, 10, 20, 20], [60, 10, 20, 20], [10, 60, 20, 20]], dtype=float)
    gt = WiderFaceGT({"im": gt_boxes}, {"easy": {"im": np.array([True, True, False])},
                                        "medium": {"im": np.array([True, False, False])},
                                        "hard": {"im": np.array([True, True, True])}})
    dets = {"im": np.array([[10, 10, 20, 20, 0.9], [11, 61, 20, 20, 0.8],
                            [100, 100, 10, 10, 0.7], [61, 10, 19, 20, 0.6]])}
    assert wider_face_ap(dets, gt, "easy") == pytest.approx(5 / 6)
    assert wider_face_ap(dets, gt, "hard") == pytest.approx(11 / 12)
    assert wider_face_ap(dets, gt, "medium") == pytest.approx(1.0)
    assert wider_face_ap({}, gt, "hard") == 0.0
    with pytest.raises(ConfigError, match="setting"):
        wider_face_ap(dets, gt, "tiny")


def test_mat_files_are_read_with_the_per_setting_faces(tmp_path):
    gt_dir = write_wider_face(tmp_path / "WIDERFace") / "eval_tools" / "ground_truth"
    gt = read_wider_face_gt(gt_dir)
    np.testing.assert_array_equal(gt.boxes["1_Handshaking_Handshaking_1_3"],
                                  [[10, 20, 30, 25], [50, 5, 0, 8]])
    assert gt.boxes["0_Parade_Parade_0_12"].shape == (0, 4)
    for setting, keep in KEEP.items():
        for name, indices in keep.items():
            assert (np.flatnonzero(gt.counted[setting][name]) + 1).tolist() == indices
    (gt_dir / "wider_hard_val.mat").unlink()
    with pytest.raises(DatasetError, match="wider_hard_val.mat: WIDER FACE ground-truth file"):
        read_wider_face_gt(gt_dir)


@pytest.fixture
def val_dataset(tmp_path):
    root = write_wider_face(tmp_path / "WIDERFace")
    wider_face_to_voc(root / "wider_face_split" / "wider_face_val_bbx_gt.txt",
                      root / "WIDER_val" / "images", root / "WIDER_val" / "Annotations",
                      root / "val.txt")
    return WIDERFaceDataset(root, "val.txt", img_subdir="WIDER_val/images",
                            ann_subdir="WIDER_val/Annotations", test_mode=True,
                            eval_gt_dir=root / "eval_tools" / "ground_truth")


def predictions_from_gt(dataset, with_ignored=False):
    samples, predictions = [], []
    for i in range(len(dataset)):
        record = dataset.get_record(i)
        boxes = record["ann"]["boxes"]
        if with_ignored:
            boxes = np.concatenate([boxes, record["ann"]["ignored_boxes"]])
        size = (record["height"], record["width"])
        samples.append(DetSample(image_id=record["image_id"], file_name=record["file_name"],
                                 ori_shape=size, img_shape=size))
        predictions.append(Instances(boxes=torch.from_numpy(boxes),
                                     labels=torch.zeros(len(boxes), dtype=torch.int64),
                                     scores=torch.linspace(0.99, 0.6, len(boxes))))
    return samples, predictions


@pytest.mark.parametrize("with_ignored", [False, True])
def test_perfect_predictions_give_ap_one_on_every_setting(val_dataset, with_ignored):
    evaluator = build_evaluator(val_dataset, ["wider_face"])
    assert isinstance(evaluator, WIDERFaceMetric)
    evaluator.process(*predictions_from_gt(val_dataset, with_ignored))
    metrics = evaluator.evaluate()
    assert metrics == {"wider_face_easy_AP": pytest.approx(1.0),
                       "wider_face_medium_AP": pytest.approx(1.0),
                       "wider_face_hard_AP": pytest.approx(1.0)}
    assert "3 of 3 images predicted" in evaluator.report()


def test_a_missed_face_lowers_only_the_settings_it_counts_in(val_dataset):
    samples, predictions = predictions_from_gt(val_dataset)
    predictions[0] = predictions[0][:1]  # drop face 2 of the parade image: medium and hard only
    metric = WIDERFaceMetric(val_dataset.eval_gt_dir)
    metric.process(samples, predictions)
    metrics = metric.evaluate()
    assert metrics["wider_face_easy_AP"] == pytest.approx(1.0)
    assert metrics["wider_face_medium_AP"] == pytest.approx(2 / 3)
    assert metrics["wider_face_hard_AP"] == pytest.approx(2 / 3)


def test_metric_configuration_errors(val_dataset, tmp_path):
    other = VOCDataset.__new__(VOCDataset)
    with pytest.raises(ConfigError, match="eval_gt_dir"):
        build_evaluator(other, ["wider_face"])
    samples, predictions = predictions_from_gt(val_dataset)
    samples[0].file_name = "9--Other/not_in_the_split.jpg"
    with pytest.raises(DatasetError, match="not an image of the WIDER FACE ground truth"):
        WIDERFaceMetric(val_dataset.eval_gt_dir).process(samples, predictions)
    with pytest.raises(ConfigError, match="num_thresholds"):
        WIDERFaceMetric(val_dataset.eval_gt_dir, num_thresholds=0)


def test_the_recipe_trains_a_few_steps_and_reports_the_three_settings(tmp_path):
    """configs/wider_face/retinanet_r50_fpn_1x_widerface.py with a tiny RetinaNet and small
    scales on the tiny folder (its validation split doubling as training data)."""
    from detbox.apis.training import train_detector
    from detbox.config import load_config
    from tests.conftest import REPO_ROOT
    from tests.tiny_detector import RETINANET

    root = write_wider_face(tmp_path / "WIDERFace")
    wider_face_to_voc(root / "wider_face_split" / "wider_face_val_bbx_gt.txt",
                      root / "WIDER_val" / "images", root / "WIDER_val" / "Annotations",
                      root / "val.txt")
    cfg = load_config(REPO_ROOT / "configs" / "wider_face" / "retinanet_r50_fpn_1x_widerface.py")
    cfg.model = dict(RETINANET)
    for loader in (cfg.train_dataloader, cfg.val_dataloader):
        loader.num_workers = 0
        dataset = loader.dataset
        dataset.data_root, dataset.split_file = str(root), "val.txt"
        dataset.img_subdir, dataset.ann_subdir = "WIDER_val/images", "WIDER_val/Annotations"
        next(t for t in dataset.pipeline if t.type == "Resize").scale = (96, 96)
    cfg.val_dataloader.dataset.eval_gt_dir = str(root / "eval_tools" / "ground_truth")
    cfg.train_cfg.max_epochs = 1
    cfg.lr_schedule.warmup_iters = 1
    metrics = train_detector(cfg, work_dir=tmp_path / "work", device=torch.device("cpu"))
    assert set(metrics) >= {"wider_face_easy_AP", "wider_face_medium_AP", "wider_face_hard_AP"}
    assert all(0.0 <= metrics[f"wider_face_{s}_AP"] <= 1.0 for s in ("easy", "medium", "hard"))
