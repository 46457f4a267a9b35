"""The tool subcommands on a tiny SSD: test, infer, flops, benchmark and ONNX export."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from detbox.cli.main import main
from tests.models.one_stage._tiny_ssd import write_tiny_ssd


@pytest.fixture(scope="module")
def ssd(tmp_path_factory):
    return [str(p) for p in write_tiny_ssd(tmp_path_factory.mktemp("ssd"))]


def test_test_on_a_synthetic_split(ssd, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DETBOX_CACHE", str(tmp_path / "cache"))
    metrics = tmp_path / "metrics.json"
    assert main(["test", *ssd, "--json-out", str(metrics)]) == 0
    result = json.loads(metrics.read_text())
    assert any("bbox" in key for key in result), result


def test_infer_writes_coco_results_in_original_coordinates(ssd, tmp_path):
    image = tmp_path / "a.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 70, 3), dtype=np.uint8)).save(
        image)
    out = tmp_path / "coco.json"
    assert main(["infer", *ssd, str(image), "--out", str(out), "--format", "coco",
                 "--score-thr", "0.01"]) == 0
    results = json.loads(out.read_text())
    assert results and all(r["category_id"] in (1, 2, 3) for r in results)
    for r in results:
        x, y, w, h = r["bbox"]
        assert x >= 0 and y >= 0 and x + w <= 70.01 and y + h <= 40.01


def test_flops_counts_every_part(ssd, tmp_path):
    report_file = tmp_path / "flops.json"
    assert main(["flops", ssd[0], "--checkpoint", ssd[1], "--shape", "300",
                 "--json-out", str(report_file)]) == 0
    report = json.loads(report_file.read_text())
    modules = {m["name"]: m for m in report["modules"]}
    assert sum(modules[p]["flops"] for p in ("backbone", "bbox_head")) == report["total_flops"]
    # the first level's class predictor: 2 x (4 priors x 4 scores) x 32 channels (conv4_3 at
    # 1/16 width) x 3 x 3 per cell, on 38 x 38 cells
    assert modules["bbox_head.cls_convs.0"]["flops"] == 2 * 16 * 32 * 9 * 38 * 38


def test_benchmark_runs(ssd, tmp_path):
    numbers = tmp_path / "bench.json"
    assert main(["benchmark", *ssd, "--shape", "300", "300", "--num-images", "2",
                 "--batch-size", "1", "--warmup", "1", "--json-out", str(numbers)]) == 0
    result = json.loads(numbers.read_text())
    assert result["num_images"] == 2 and result["images_per_second"] > 0


def test_export_onnx_matches_pytorch_on_padded_inputs(ssd, tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    out = tmp_path / "ssd.onnx"
    assert main(["export-onnx", *ssd, str(out), "--shape", "300"]) == 0
    printed = capsys.readouterr().out
    # every image is resized to 300 x 300 and padded to 320 x 320 before the graph, which
    # cuts the padding off again
    assert "onnxruntime matches PyTorch on all 4 images" in printed, printed
    assert "input 320x320, 50 detections (PyTorch) vs 50 (onnxruntime)" in printed


def test_ssdlite_onnx_graph_matches_pytorch(tmp_path):
    pytest.importorskip("onnxruntime")
    from detbox.deploy.onnx_export import export_onnx, verification_images, verify_onnx
    from tests.models.one_stage._tiny_ssd import TINY_SSDLITE, build_tiny_ssd, tiny_ssd_config

    model = build_tiny_ssd(TINY_SSDLITE)
    model.cfg = tiny_ssd_config(TINY_SSDLITE, size=320)
    path = export_onnx(model, tmp_path / "lite.onnx", shape=(320, 320))
    reports = verify_onnx(model, path, verification_images((240, 320)))
    for report in reports:
        assert report.ok, report.problems
    assert reports[0].num_torch == reports[0].num_onnx > 10
