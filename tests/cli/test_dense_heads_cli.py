"""``detbox test``, ``infer``, ``flops``, ``benchmark`` and ``export-onnx`` on tiny FCOS, ATSS,
GFL and FoveaBox detectors: each command runs and reports values for the new heads."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from detbox.cli.main import main
from tests.deploy.test_onnx_export_dense import _model_cfg
from tests.tiny_detector import write_tiny

NAMES = ["FCOS", "ATSS", "GFL", "FOVEA"]


@pytest.fixture(scope="module", params=NAMES)
def tiny(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp(request.param.lower())
    config, checkpoint = write_tiny(folder, _model_cfg(request.param), with_data=True)
    return request.param, str(config), str(checkpoint), folder


def test_test_infer_flops_benchmark(tiny, tmp_path, capsys):
    name, config, checkpoint, _ = tiny
    metrics = tmp_path / "metrics.json"
    assert main(["test", config, checkpoint, "--device", "cpu", "--launcher", "none",
                 "--json-out", str(metrics)]) == 0
    assert 0.0 <= json.loads(metrics.read_text())["bbox_mAP"] <= 1.0

    image = tmp_path / "a.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 50, 3), dtype=np.uint8)
                    ).save(image)
    out = tmp_path / "preds.json"
    assert main(["infer", config, checkpoint, str(image), "--out", str(out),
                 "--score-thr", "0.2"]) == 0
    assert out.is_file() and out.stat().st_size > 0

    flops = tmp_path / "flops.json"
    assert main(["flops", config, "--checkpoint", checkpoint, "--shape", "64",
                 "--json-out", str(flops)]) == 0
    report = json.loads(flops.read_text())
    modules = {m["name"]: m for m in report["modules"]}
    # The class-logit conv: 2 x 3 classes x 16 channels x 3 x 3 per cell, 8x8 + 4x4 + 2x2 + 1x1.
    assert modules["bbox_head.cls_logits"]["flops"] == 2 * 3 * 16 * 9 * (64 + 16 + 4 + 1)

    bench = tmp_path / "bench.json"
    assert main(["benchmark", config, checkpoint, "--shape", "48", "64", "--num-images", "2",
                 "--batch-size", "1", "--warmup", "1", "--json-out", str(bench)]) == 0
    assert json.loads(bench.read_text())["images_per_second"] > 0
    capsys.readouterr()


def test_export_onnx_cli(tiny, tmp_path, capsys):
    name, config, checkpoint, _ = tiny
    out = tmp_path / f"{name}.onnx"
    assert main(["export-onnx", config, checkpoint, str(out), "--shape", "64"]) == 0
    assert "onnxruntime matches PyTorch on all 4 images" in capsys.readouterr().out
