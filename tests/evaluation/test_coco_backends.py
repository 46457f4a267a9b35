"""The NumPy backend, faster-coco-eval and pycocotools behind evaluate_coco, CocoMetric and
``detbox eval``: the same numbers, the choice of backend, and the fallback when faster-coco-eval
is missing."""

from __future__ import annotations

import json
import logging
import sys

import numpy as np
import pytest
from pycocotools import mask as mask_util

import detbox.cli.main as cli_main
from detbox.errors import ConfigError
from detbox.evaluation.coco_backends import BACKENDS, check_backend, resolve_backend
from detbox.evaluation.coco_metric import CocoMetric
from detbox.evaluation.coco_scoring import evaluate_coco, load_coco_gt
from detbox.evaluation.results import write_results
from tests.evaluation.simulate import simulate_detections

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


def _square(x: float, y: float, size: float) -> list[list[float]]:
    return [[x, y, x + size, y, x + size, y + size, x, y + size]]


def _mixed_gt() -> dict:
    """Four categories (one without ground truth), crowds, and images without ground truth.

    Instances of every size class, so that AP small/medium/large are all defined; masks are
    polygons, crowds uncompressed RLE as in COCO itself.
    """
    images = [{"id": i, "width": 160, "height": 120, "file_name": f"{i}.png"} for i in range(1, 9)]
    annotations = []
    for image_id in range(1, 7):  # images 7 and 8 have no ground truth
        for k, (cat, size) in enumerate([(2, 12), (2, 40), (7, 100), (4, 20 + 6 * image_id)]):
            x, y = 4 + 9 * k + image_id, 6 + 3 * k
            annotations.append({
                "image_id": image_id, "category_id": cat, "iscrowd": 0,
                "segmentation": _square(x, y, size), "bbox": [x, y, size, size],
                "area": float(size * size),
            })
        if image_id % 2:
            counts = [60 * 120 + 5, 30, 90, 30, 120 * 160 - 60 * 120 - 155]
            annotations.append({
                "image_id": image_id, "category_id": 2, "iscrowd": 1,
                "segmentation": {"size": [120, 160], "counts": counts},
                "bbox": [60.0, 5.0, 3.0, 30.0], "area": 60.0,
            })
    for index, ann in enumerate(annotations, start=1):
        ann["id"] = index
    names = {2: "cat", 4: "dog", 7: "owl", 9: "yak"}  # no yak in the ground truth
    return {"images": images, "annotations": annotations,
            "categories": [{"id": c, "name": n} for c, n in names.items()]}


@pytest.fixture(scope="module")
def mixed_gt() -> dict:
    return _mixed_gt()


@pytest.fixture(scope="module")
def mixed_results(mixed_gt) -> list[dict]:
    results = simulate_detections(mixed_gt, seed=3, with_masks=True, false_positives=4.0,
                                  wrong_class=0.2)
    mask = np.zeros((120, 160), dtype=np.uint8, order="F")
    mask[5:35, 60:63] = 1  # on the crowd of image 1: matched to it, so neither TP nor FP
    rle = mask_util.encode(mask)
    rle["counts"] = rle["counts"].decode("ascii")
    return [*results, {"image_id": 1, "category_id": 2, "bbox": [60.0, 5.0, 3.0, 30.0],
                       "score": 0.95, "segmentation": rle}]


def _all(coco_gt, results, iou_type, **kwargs):
    """The result of each backend; pycocotools' last."""
    assert BACKENDS[-1] == "pycocotools"
    return [evaluate_coco(coco_gt, results, iou_type, backend=b, **kwargs) for b in BACKENDS]


def _assert_same(fast, reference, tol: float = 1e-12) -> None:
    assert np.abs(np.array(fast.stats) - np.array(reference.stats)).max() <= tol
    assert fast.summary_lines == reference.summary_lines
    assert [(c.name, c.category_id, c.num_gt) for c in fast.per_class] == [
        (c.name, c.category_id, c.num_gt) for c in reference.per_class
    ]
    for a, b in zip(fast.per_class, reference.per_class, strict=True):
        assert abs(a.ap - b.ap) <= tol and abs(a.ap50 - b.ap50) <= tol
        assert abs(a.ap75 - b.ap75) <= tol


@pytest.mark.parametrize("iou_type", ["bbox", "segm"])
def test_backends_agree_with_pycocotools_on_pennfudan(
    pennfudan_val, bbox_results, segm_results, reference_cocoeval, iou_type
):
    results = bbox_results if iou_type == "bbox" else segm_results
    expected, lines = reference_cocoeval(pennfudan_val, results, iou_type)
    *fast, slow = _all(load_coco_gt(pennfudan_val), results, iou_type)
    for result in fast:
        _assert_same(result, slow)
    for result in (*fast, slow):
        assert np.abs(np.array(result.stats) - expected).max() <= 1e-9
        assert result.summary_lines == lines


@pytest.mark.parametrize("iou_type", ["bbox", "segm", "proposal"])
def test_backends_agree_on_crowds_empty_images_and_classes_without_gt(
    mixed_gt, mixed_results, iou_type
):
    max_dets = (100, 300, 1000) if iou_type == "proposal" else (1, 10, 100)
    *fast, slow = _all(load_coco_gt(mixed_gt), mixed_results, iou_type, max_dets=max_dets)
    for result in fast:
        _assert_same(result, slow)
    assert all(-1 < s < 1 for s in slow.stats[:3])  # neither hopeless nor perfect
    if iou_type != "proposal":
        rows = {c.name: c for c in slow.per_class}
        assert rows["yak"].ap == -1 and rows["yak"].num_gt == 0
        assert rows["cat"].num_gt == 12  # the three crowds do not count
        assert 0 < rows["owl"].ap <= 1


def test_backends_agree_with_categories_in_label_order(mixed_gt, mixed_results):
    """The backends sort the category ids; rows must still follow the labels."""
    cat_ids, names = [7, 2, 9, 4], ["owl!", "cat!", "yak!", "dog!"]
    *fast, slow = _all(load_coco_gt(mixed_gt), mixed_results, "bbox", cat_ids=cat_ids,
                       class_names=names)
    for result in fast:
        _assert_same(result, slow)
        assert [(c.category_id, c.name) for c in result.per_class] == list(zip(cat_ids, names))


@pytest.mark.parametrize("iou_type", ["bbox", "segm"])
def test_backends_agree_on_zero_results(mixed_gt, iou_type):
    *fast, slow = _all(load_coco_gt(mixed_gt), [], iou_type)
    for result in fast:
        _assert_same(result, slow)
        assert result.stats[0] == 0.0


def test_unknown_backend_is_one_clear_line(pennfudan_val):
    with pytest.raises(ConfigError) as error:
        check_backend("fast")
    message = str(error.value)
    assert "\n" not in message
    assert "'fast'" in message and "numpy, faster-coco-eval, pycocotools" in message
    with pytest.raises(ConfigError, match="unknown COCO evaluation backend 'cocoapi'"):
        CocoMetric(str(pennfudan_val), backend="cocoapi")
    with pytest.raises(ConfigError, match="unknown COCO evaluation backend"):
        evaluate_coco(load_coco_gt(pennfudan_val), [], "bbox", backend="nope")


def test_missing_faster_coco_eval_falls_back_with_a_log_line(
    monkeypatch, caplog, mixed_gt, mixed_results
):
    expected = evaluate_coco(load_coco_gt(mixed_gt), mixed_results, "segm", backend="pycocotools")
    monkeypatch.setitem(sys.modules, "faster_coco_eval", None)  # makes the import fail
    # Listen on the module's logger itself: detbox's log setup may stop propagation to root.
    module_logger = logging.getLogger("detbox.evaluation.coco_backends")
    module_logger.addHandler(caplog.handler)
    try:
        with caplog.at_level(logging.WARNING, logger=module_logger.name):
            assert resolve_backend(None, "segm") == "pycocotools"
            assert resolve_backend("faster-coco-eval") == "pycocotools"
            result = evaluate_coco(load_coco_gt(mixed_gt), mixed_results, "segm")
    finally:
        module_logger.removeHandler(caplog.handler)
    assert "faster-coco-eval is not installed; evaluating with pycocotools" in caplog.text
    assert result.stats == expected.stats
    assert resolve_backend("pycocotools") == "pycocotools"
    assert resolve_backend(None, "bbox") == "numpy"  # boxes never need faster-coco-eval


def test_metric_backend_from_config(pennfudan_val):
    assert CocoMetric(str(pennfudan_val)).backend == "numpy"
    assert CocoMetric(str(pennfudan_val), backend="pycocotools").backend == "pycocotools"


def test_build_evaluator_passes_the_config_backend(pennfudan_val):
    from detbox.apis.evaluate import build_evaluator

    class Dataset:  # the three things build_evaluator reads from a COCO dataset
        coco = load_coco_gt(pennfudan_val)
        cat_ids = [1]
        class_names = ["person"]

    assert build_evaluator(Dataset(), ["bbox"], backend="pycocotools").backend == "pycocotools"
    assert build_evaluator(Dataset(), ["bbox"]).backend == "numpy"


def test_cli_backend_option(mixed_gt, mixed_results, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(cli_main, "SUBCOMMANDS", ("eval",))
    gt_file, results_file = tmp_path / "gt.json", tmp_path / "results.json"
    gt_file.write_text(json.dumps(_mixed_gt()))  # the fixture's masks were turned into RLEs
    write_results(results_file, mixed_results)
    outputs = {}
    for backend in BACKENDS:
        out = tmp_path / f"{backend}.json"
        argv = ["eval", str(gt_file), str(results_file), "--iou-type", "segm", "--iou-type",
                "bbox", "--iou-type", "proposal", "--backend", backend, "--json-out", str(out)]
        assert cli_main.main(argv) == 0
        outputs[backend] = json.loads(out.read_text())
    slow = outputs["pycocotools"]
    for backend in BACKENDS[:-1]:
        for iou_type in ("segm", "bbox", "proposal"):
            fast = outputs[backend][iou_type]
            if backend == "numpy" and iou_type != "segm":  # bit-identical
                assert fast["stats"] == slow[iou_type]["stats"]
            assert np.abs(np.array(fast["stats"]) - slow[iou_type]["stats"]).max() <= 1e-12
            assert fast["per_class"].keys() == slow[iou_type]["per_class"].keys()
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        cli_main.main(["eval", str(gt_file), str(results_file), "--backend", "cocoapi"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'cocoapi'" in capsys.readouterr().err


def test_training_config_accepts_the_backend_key():
    from detbox.apis.build import check_section
    from detbox.apis.training import EVAL_DEFAULTS

    settings = check_section({"metric": ["bbox"], "backend": "pycocotools"}, EVAL_DEFAULTS,
                             "evaluation")
    assert settings["backend"] == "pycocotools"
    assert check_section(None, EVAL_DEFAULTS, "evaluation")["backend"] is None
