"""``detbox analyze-results``: summary.json and the stacked-area plots."""

from __future__ import annotations

import json

import pytest

from detbox.analysis.coco_errors import CURVES, analyze_errors
from detbox.cli.main import main
from tests.analysis.test_coco_error_analysis import _gt, _results
from tests.tiny_detector import two_stage_model, write_tiny

pytest.importorskip("matplotlib", reason="the plots need matplotlib (detbox[tools])")


def test_ground_truth_file_and_results(tmp_path, capsys) -> None:
    gt_file, results_file = tmp_path / "gt.json", tmp_path / "results.json"
    gt_file.write_text(json.dumps(_gt().dataset))
    results_file.write_text(json.dumps(_results()))
    out = tmp_path / "analysis"
    assert main(["analyze-results", str(gt_file), str(results_file), "--out", str(out),
                 "--areas", "all", "small"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    expected = analyze_errors(_gt(), _results())
    assert summary["per_category"]["cat"]["all"] == pytest.approx(expected.aps(0))
    assert summary["overall"]["all"] == pytest.approx(expected.aps())
    for area in ("all", "small"):
        assert sorted(p.name for p in (out / area).glob("*.png")) == [
            "car.png", "cat.png", "dog.png", "overall.png"]
    printed = capsys.readouterr().out
    assert all(curve in printed for curve in CURVES) and "cat" in printed


def test_config_test_split_as_ground_truth(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("DETBOX_CACHE", str(tmp_path / "cache"))
    config, checkpoint = write_tiny(tmp_path / "model", two_stage_model(), with_data=True)
    results = tmp_path / "results.json"
    assert main(["test", str(config), str(checkpoint), "--format-only", "--out", str(results),
                 "--device", "cpu"]) == 0
    out = tmp_path / "analysis"
    assert main(["analyze-results", str(config), str(results), "--out", str(out),
                 "--no-plots"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    overall = summary["overall"]["all"]
    assert overall["FN"] == 1.0
    assert overall["C75"] <= overall["C50"] <= overall["Loc"] <= overall["Oth"] <= overall["BG"]
    assert not list(out.glob("*/*.png"))


def test_a_results_file_with_unknown_ids_is_a_clear_error(tmp_path, capsys) -> None:
    gt_file, results_file = tmp_path / "gt.json", tmp_path / "results.json"
    gt_file.write_text(json.dumps(_gt().dataset))
    results_file.write_text(json.dumps([{**_results()[0], "image_id": 99}]))
    assert main(["analyze-results", str(gt_file), str(results_file), "--out",
                 str(tmp_path / "a")]) == 2
    assert "image_id" in capsys.readouterr().err
