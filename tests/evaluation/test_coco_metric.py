"""CocoMetric on Instances: the same numbers as the results-file route and as pycocotools."""

from __future__ import annotations

import json
from collections import defaultdict

import numpy as np
import pytest
import torch
from pycocotools import mask as mask_util

import detbox.cli.main as cli_main
from detbox.errors import ConfigError
from detbox.evaluation.coco_metric import CocoMetric
from detbox.evaluation.coco_scoring import load_coco_gt
from detbox.evaluation.results import ResultsError, instances_to_coco_results, write_results
from detbox.structures.instances import DetSample, Instances

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


def _sample(image: dict) -> DetSample:
    shape = (image["height"], image["width"])
    return DetSample(image["id"], image.get("file_name", ""), ori_shape=shape, img_shape=shape)


def _to_instances(coco_gt, results: list[dict], with_masks: bool):
    """Group result dicts into one Instances per ground-truth image (images without any too)."""
    label_of = {c: i for i, c in enumerate(sorted(coco_gt.getCatIds()))}
    by_image = defaultdict(list)
    for r in results:
        by_image[r["image_id"]].append(r)
    samples, predictions = [], []
    for image_id in sorted(coco_gt.getImgIds()):
        rows = by_image[image_id]
        samples.append(_sample(coco_gt.imgs[image_id]))
        if not rows:
            predictions.append(Instances.empty(with_scores=True))
            continue
        xywh = torch.tensor([r["bbox"] for r in rows], dtype=torch.float64)
        masks = None
        if with_masks:
            masks = torch.from_numpy(mask_util.decode([r["segmentation"] for r in rows]))
            masks = masks.permute(2, 0, 1).bool()
        predictions.append(Instances(
            boxes=torch.cat([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], 1).float(),
            labels=torch.tensor([label_of[r["category_id"]] for r in rows]),
            scores=torch.tensor([r["score"] for r in rows]),
            masks=masks,
        ))
    return samples, predictions


def _run_cli(monkeypatch, argv: list[str]) -> int:
    # Only the eval parser is needed here; the other subcommands are not imported.
    monkeypatch.setattr(cli_main, "SUBCOMMANDS", ("eval",))
    return cli_main.main(argv)


def test_metric_equals_file_route_and_pycocotools(
    pennfudan_val, segm_results, reference_cocoeval, tmp_path, monkeypatch, capsys
):
    coco_gt = load_coco_gt(pennfudan_val)
    samples, predictions = _to_instances(coco_gt, segm_results, with_masks=True)
    metric = CocoMetric(str(pennfudan_val), iou_types=("bbox", "segm"))
    for start in range(0, len(samples), 4):
        metric.process(samples[start:start + 4], predictions[start:start + 4])
    metrics = metric.evaluate()

    results = [
        r for s, p in zip(samples, predictions, strict=True)
        for r in instances_to_coco_results(s.image_id, p, metric.cat_ids)
    ]
    write_results(tmp_path / "results.json", results)
    argv = ["eval", str(pennfudan_val), str(tmp_path / "results.json"),
            "--iou-type", "bbox", "--iou-type", "segm", "--json-out", str(tmp_path / "m.json")]
    assert _run_cli(monkeypatch, argv) == 0
    file_route = json.loads((tmp_path / "m.json").read_text())
    for iou_type in ("bbox", "segm"):
        expected, lines = reference_cocoeval(pennfudan_val, results, iou_type)
        assert np.abs(np.array(metrics[f"{iou_type}_stats"]) - expected).max() <= 1e-9
        assert metrics[f"{iou_type}_stats"] == file_route[iou_type]["stats"]
        assert metrics[f"{iou_type}_per_class"] == file_route[iou_type]["per_class"]
        assert metric.results[iou_type].summary_lines == lines
    assert metrics["segm_mAP"] == metrics["segm_stats"][0]
    assert metrics["bbox_mAP_l"] == metrics["bbox_stats"][5]
    assert metric.results["segm"].summary_lines[0] in metric.report()


def test_flat_metric_keys(pennfudan_val, bbox_results):
    coco_gt = load_coco_gt(pennfudan_val)
    samples, predictions = _to_instances(coco_gt, bbox_results, with_masks=False)
    metric = CocoMetric(coco_gt=coco_gt, iou_types=("bbox", "proposal"))
    metric.process(samples, predictions)
    metrics = metric.evaluate()
    assert set(metrics) == {
        "bbox_mAP", "bbox_mAP_50", "bbox_mAP_75", "bbox_mAP_s", "bbox_mAP_m", "bbox_mAP_l",
        "bbox_stats", "bbox_per_class", "AR@100", "AR@300", "AR@1000",
        "AR_s@1000", "AR_m@1000", "AR_l@1000", "proposal_stats",
    }
    scalars = [v for k, v in metrics.items() if not k.endswith(("_stats", "_per_class"))]
    assert len(scalars) == 12 and all(isinstance(v, float) for v in scalars)
    assert metrics["AR@1000"] == metrics["proposal_stats"][8]
    assert metrics["bbox_per_class"]["person"]["num_gt"] == 77


def test_proposal_recall_equals_pycocotools(pennfudan_val, bbox_results, reference_cocoeval):
    coco_gt = load_coco_gt(pennfudan_val)
    samples, predictions = _to_instances(coco_gt, bbox_results, with_masks=False)
    for p in predictions:
        p.labels.zero_()  # a proposal network has one label
    metric = CocoMetric(coco_gt=coco_gt, iou_types="proposal", proposal_nums=(1, 5, 100))
    metric.process(samples, predictions)
    metrics = metric.evaluate()
    results = [r for s, p in zip(samples, predictions, strict=True)
               for r in instances_to_coco_results(s.image_id, p, metric.cat_ids)]
    expected, _ = reference_cocoeval(
        pennfudan_val, results, "proposal", use_cats=False, max_dets=(1, 5, 100)
    )
    assert [metrics["AR@1"], metrics["AR@5"], metrics["AR@100"]] == pytest.approx(
        expected[6:9], abs=1e-9
    )


def test_zero_predictions(pennfudan_val):
    coco_gt = load_coco_gt(pennfudan_val)
    metric = CocoMetric(coco_gt=coco_gt, iou_types=("bbox", "segm", "proposal"))
    samples = [_sample(coco_gt.imgs[i]) for i in coco_gt.getImgIds()]
    metric.process(samples, [Instances.empty(with_scores=True) for _ in samples])
    metrics = metric.evaluate()
    assert metrics["bbox_stats"] == [0.0] * 12 and metrics["segm_mAP"] == 0.0
    assert metrics["AR@100"] == 0.0
    assert "| person |" in metric.report()


def test_only_processed_images_count_once_and_evaluate_resets(pennfudan_val, bbox_results):
    coco_gt = load_coco_gt(pennfudan_val)
    samples, predictions = _to_instances(coco_gt, bbox_results, with_masks=False)
    metric = CocoMetric(coco_gt=coco_gt, classwise=False)
    metric.process(samples[:10], predictions[:10])
    metric.process(samples[:10], predictions[:10])  # repeated images count once
    metrics = metric.evaluate()
    assert metric.results["bbox"].num_images == 10
    assert "bbox_per_class" not in metrics and "| class" not in metric.report()
    with pytest.raises(RuntimeError, match="before process"):
        metric.evaluate()
    metric.process(samples[:10], predictions[:10])
    assert metric.evaluate()["bbox_stats"] == metrics["bbox_stats"]


def test_class_names_and_cat_ids_reach_the_table(pennfudan_val):
    coco_gt = load_coco_gt(pennfudan_val)
    metric = CocoMetric(coco_gt=coco_gt, cat_ids=[1], class_names=["pedestrian"])
    image = coco_gt.imgs[1]
    box = Instances(torch.tensor([[0.0, 0.0, 5.0, 5.0]]), torch.tensor([0]), torch.tensor([0.3]))
    metric.process([_sample(image)], [box])
    assert list(metric.evaluate()["bbox_per_class"]) == ["pedestrian"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "exactly one of ann_file and coco_gt"),
        ({"iou_types": ("bbox", "keypoints")}, "iou_types must be some of bbox, segm, proposal"),
        ({"cat_ids": [1, 2, 3]}, r"cat_ids \[2, 3\] are not categories .* valid ids: 1"),
        ({"cat_ids": [1, 1]}, "repeated"),
        ({"class_names": ["a", "b"]}, "2 class_names for 1 cat_ids"),
        ({"proposal_nums": (100, 1000)}, "three counts"),
    ],
)
def test_constructor_errors(pennfudan_val, kwargs, message):
    if kwargs:
        kwargs["coco_gt"] = load_coco_gt(pennfudan_val)
    with pytest.raises(ConfigError, match=message):
        CocoMetric(**kwargs)


def test_process_errors(pennfudan_val):
    coco_gt = load_coco_gt(pennfudan_val)
    metric = CocoMetric(coco_gt=coco_gt, iou_types=("segm",))
    box = Instances(torch.tensor([[0.0, 0.0, 5.0, 5.0]]), torch.tensor([0]), torch.tensor([0.3]))
    stranger = DetSample(12345, "x.png", (10, 10), (10, 10))
    with pytest.raises(ResultsError, match=r"image_id 12345 \(x.png\) is not an image"):
        metric.process([stranger], [box])
    with pytest.raises(ConfigError, match="carry no masks"):
        metric.process([_sample(coco_gt.imgs[1])], [box])
    with pytest.raises(ValueError, match="1 samples but 2 predictions"):
        metric.process([_sample(coco_gt.imgs[1])], [box, box])
