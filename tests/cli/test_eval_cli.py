"""``detbox eval``: pycocotools' numbers, readable output and one-line errors."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

import detbox.cli.main as cli_main
from detbox.evaluation import evaluate_coco, load_coco_gt, load_results
from tests.evaluation.cocoeval_reference import pennfudan_val_or_skip, reference_cocoeval
from tests.evaluation.simulate import simulate_detections

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


@pytest.fixture(scope="module")
def gt_path() -> Path:
    return pennfudan_val_or_skip()


@pytest.fixture(scope="module")
def results_path(gt_path, tmp_path_factory) -> Path:
    """Boxes and masks simulated from the ground truth, under a fixed seed."""
    path = tmp_path_factory.mktemp("eval") / "results.json"
    path.write_text(json.dumps(simulate_detections(gt_path, seed=3, with_masks=True)))
    return path


def run_eval(monkeypatch, *args: str) -> int:
    # Only the eval parser is needed here; the other subcommands are not imported.
    monkeypatch.setattr(cli_main, "SUBCOMMANDS", ("eval",))
    return cli_main.main(["eval", *map(str, args)])


@pytest.mark.parametrize("iou_type", ["bbox", "segm"])
def test_numbers_equal_pycocotools(gt_path, results_path, tmp_path, monkeypatch, capsys, iou_type):
    out = tmp_path / "metrics.json"
    args = (gt_path, results_path, "--iou-type", iou_type, "--json-out", out)
    assert run_eval(monkeypatch, *args) == 0
    printed = capsys.readouterr().out.splitlines()
    results = json.loads(results_path.read_text())
    expected, expected_lines = reference_cocoeval(gt_path, results, iou_type)

    report = json.loads(out.read_text())
    assert list(report) == [iou_type]
    assert np.abs(np.array(report[iou_type]["stats"]) - expected).max() <= 1e-9
    start = printed.index(expected_lines[0])
    assert printed[start:start + 12] == expected_lines

    library = evaluate_coco(load_coco_gt(gt_path), load_results(results_path), iou_type)
    assert np.abs(np.array(library.stats) - expected).max() <= 1e-9


def test_per_class_table_and_json(gt_path, results_path, tmp_path, monkeypatch, capsys):
    out = tmp_path / "metrics.json"
    assert run_eval(monkeypatch, gt_path, results_path, "--json-out", out) == 0
    person = json.loads(out.read_text())["bbox"]["per_class"]["person"]
    assert set(person) == {"category_id", "AP", "AP50", "AP75", "num_gt"}
    printed = capsys.readouterr().out
    assert "| class  |    AP |  AP50 |  AP75 | #GT |" in printed
    row = f"| person | {person['AP']:.3f} | {person['AP50']:.3f} | {person['AP75']:.3f} |  77 |"
    assert row in printed
    assert f"metrics written to {out}" in printed


def test_class_without_ground_truth_shows_na(tmp_path, monkeypatch, capsys):
    gt = {
        "images": [{"id": 1, "width": 50, "height": 40}],
        "categories": [{"id": 1, "name": "cat"}, {"id": 2, "name": "unicorn"}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [5, 5, 20, 20],
                         "area": 400, "iscrowd": 0}],
    }
    results = [{"image_id": 1, "category_id": 2, "bbox": [5, 5, 20, 20], "score": 0.9}]
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "r.json").write_text(json.dumps(results))
    out = tmp_path / "m.json"
    assert run_eval(monkeypatch, tmp_path / "gt.json", tmp_path / "r.json", "--json-out", out) == 0
    printed = capsys.readouterr().out
    na = "n/a (no ground truth)"
    assert f"| unicorn | {na} | {na} | {na} |   0 |" in printed
    assert "| cat     |                 0.000 |" in printed
    assert json.loads(out.read_text())["bbox"]["per_class"]["unicorn"]["AP"] == -1


def test_zero_predictions(gt_path, tmp_path, monkeypatch, capsys):
    (tmp_path / "empty.json").write_text("[]")
    out = tmp_path / "m.json"
    args = (gt_path, tmp_path / "empty.json", "--iou-type", "segm", "--json-out", out)
    assert run_eval(monkeypatch, *args) == 0
    assert json.loads(out.read_text())["segm"]["stats"] == [0.0] * 12
    assert "COCO segm evaluation: 30 images, 0 results" in capsys.readouterr().out


def _one_result(**change) -> list[dict]:
    """A good result, then one with ``change`` applied (a None value removes the key)."""
    good = {"image_id": 1, "category_id": 1, "bbox": [1.0, 2.0, 3.0, 4.0], "score": 0.5}
    return [good, {k: v for k, v in {**good, **change}.items() if v is not None}]


@pytest.mark.parametrize(
    ("results", "iou_type", "message"),
    [
        (None, "bbox", "results file '.*missing.json' does not exist"),
        ("{not json", "bbox", "results file '.*' is not valid JSON: Expecting"),
        ({"annotations": []}, "bbox", "must hold a JSON list of detections .*, got an object"),
        (_one_result(image_id=4242), "bbox", "result #1 has image_id 4242, which is not an image"),
        (_one_result(category_id=7), "bbox", "result #1 has category_id 7, .* valid ids: 1$"),
        (_one_result(bbox=None), "bbox", "result #1 has no 'bbox', which bbox evaluation needs"),
        (_one_result(), "segm", "result #0 has no 'segmentation', which segm evaluation needs"),
    ],
)
def test_bad_results_give_one_line(
    gt_path, tmp_path, monkeypatch, capsys, results, iou_type, message
):
    path = tmp_path / ("missing.json" if results is None else "results.json")
    if results is not None:
        path.write_text(results if isinstance(results, str) else json.dumps(results))
    assert run_eval(monkeypatch, gt_path, path, "--iou-type", iou_type) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    (line,) = captured.err.splitlines()
    assert line.startswith("detbox eval: error: ")
    assert re.search(message, line), line


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "ground-truth file '.*nope.json' does not exist"),
        ("[1, 2", "ground-truth file '.*' is not valid JSON"),
        ('{"images": []}', "is not COCO format: it has no 'annotations' list"),
    ],
)
def test_bad_ground_truth_gives_one_line(tmp_path, monkeypatch, capsys, content, message):
    gt = tmp_path / ("nope.json" if content is None else "gt.json")
    if content is not None:
        gt.write_text(content)
    (tmp_path / "r.json").write_text("[]")
    assert run_eval(monkeypatch, gt, tmp_path / "r.json") == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert re.search(message, line), line
