"""``detbox test-robustness``: a tiny detector under 2 corruptions x 2 severities, severity 0
equal to ``detbox test``, the pipeline rewriting and the command's errors."""

from __future__ import annotations

import json

import pytest

from detbox.apis.robustness import FirstImages, corrupted_dataset
from detbox.cli.main import main
from detbox.data import build_dataset
from detbox.data.transforms.corrupt import load_imagecorruptions
from detbox.errors import ConfigError
from detbox.evaluation.robustness import STAT_NAMES
from tests.tiny_detector import write_tiny


def _have_package() -> bool:
    try:
        load_imagecorruptions()
    except ConfigError:
        return False
    return True


needs_package = pytest.mark.skipif(not _have_package(), reason="imagecorruptions is not "
                                   "installed (pip install 'detbox[robustness]')")


@pytest.fixture
def tiny(tmp_path, monkeypatch):
    monkeypatch.setenv("DETBOX_CACHE", str(tmp_path / "cache"))
    return [str(p) for p in write_tiny(tmp_path / "model", with_data=True)]


@needs_package
def test_two_corruptions_two_severities_json_table_plot(tiny, tmp_path, capsys):
    out = tmp_path / "robust"
    assert main(["test-robustness", *tiny, "--corruptions", "gaussian_noise", "fog",
                 "--severities", "0", "1", "3", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    report = json.loads((out / "robustness.json").read_text())
    assert (out / "robustness.png").read_bytes()[:4] == b"\x89PNG"
    assert report["eval_types"] == ["bbox"] and report["severities"] == [0, 1, 3]
    assert list(report["corruptions"]) == ["gaussian_noise", "fog"]
    for by_severity in report["corruptions"].values():
        assert list(by_severity) == ["1", "3"]
        assert all(list(v["bbox"]) == list(STAT_NAMES) for v in by_severity.values())
    aps = [v["bbox"]["AP"] for s in report["corruptions"].values() for v in s.values()]
    clean = report["clean"]["bbox"]["AP"]
    summary = report["summary"]["bbox"]
    assert summary["mPC"] == pytest.approx(sum(aps) / 4)
    assert summary["clean"] == clean
    assert summary["rPC"] == pytest.approx(sum(aps) / 4 / clean)
    assert "bbox AP under corruption" in printed
    assert "gaussian_noise" in printed and f"mPC: {summary['mPC']:.3f}" in printed
    assert printed.count("clean severity 0:") == 1  # the clean baseline is evaluated once


def test_severity_zero_equals_detbox_test(tiny, tmp_path):
    metrics = tmp_path / "metrics.json"
    assert main(["test", *tiny, "--json-out", str(metrics)]) == 0
    out = tmp_path / "robust"
    assert main(["test-robustness", *tiny, "--corruptions", "noise", "--severities", "0",
                 "--out", str(out)]) == 0
    report = json.loads((out / "robustness.json").read_text())
    expected = json.loads(metrics.read_text())["bbox_stats"]
    assert list(report["clean"]["bbox"].values()) == pytest.approx(expected, abs=0)
    assert report["summary"]["bbox"]["mPC"] is None


@needs_package
def test_num_images_evaluates_the_first_images(tiny, tmp_path):
    out = tmp_path / "robust"
    assert main(["test-robustness", *tiny, "--corruptions", "contrast", "--severities", "2",
                 "--num-images", "2", "--out", str(out)]) == 0
    report = json.loads((out / "robustness.json").read_text())
    assert report["clean"] == {} and list(report["corruptions"]["contrast"]) == ["2"]


@needs_package
@pytest.mark.parametrize("options, words", [
    (["--corruptions", "rain"], "unknown corruption 'rain'"),
    (["--severities", "6"], "--severities must be 0 (clean) to 5"),
    (["--num-images", "0"], "--num-images must be positive"),
])
def test_mistakes_are_one_line(tiny, options, words, capsys):
    assert main(["test-robustness", *tiny, *options]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("detbox test-robustness: error: ") and words in err
    assert "\n" not in err


def test_corrupt_goes_right_after_load_image_in_every_dataset():
    pipeline = [{"type": "LoadImage"}, {"type": "Resize", "scale": (64, 64)}]
    cfg = {"type": "ConcatDataset", "datasets": [
        {"type": "CocoDataset", "pipeline": pipeline},
        {"type": "CocoDataset", "test_mode": True}]}
    out = corrupted_dataset(cfg, "fog", 2)
    corrupt = {"type": "Corrupt", "corruption": "fog", "severity": 2}
    assert out["datasets"][0]["pipeline"] == [pipeline[0], corrupt, pipeline[1]]
    assert out["datasets"][1]["pipeline"][:2] == [{"type": "LoadImage"}, corrupt]  # default
    assert cfg["datasets"][0]["pipeline"] == pipeline  # the config itself is unchanged
    with pytest.raises(ConfigError, match="no LoadImage"):
        corrupted_dataset({"pipeline": [{"type": "Resize"}]}, "fog", 1)
    with pytest.raises(ConfigError, match="a Corrupt step already"):
        corrupted_dataset({"pipeline": out["datasets"][0]["pipeline"]}, "fog", 1)


def test_first_images_is_the_dataset_cut_short(tmp_path, monkeypatch):
    monkeypatch.setenv("DETBOX_CACHE", str(tmp_path / "cache"))
    dataset = build_dataset({"type": "SyntheticShapesDataset", "split": "val", "num_images": 4,
                             "image_size": 64, "test_mode": True})
    first = FirstImages(dataset, 3)
    assert len(first) == 3 and first.class_names == dataset.class_names
    assert first[2][1].image_id == dataset[2][1].image_id
    assert len(FirstImages(dataset, 10)) == 4
    with pytest.raises(IndexError):
        first[3]
