"""`detbox test / infer / flops / export-onnx` on a tiny checkpoint of a model family."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from detbox.cli.main import main
from tests.tiny_detector import write_tiny


def check_tools(tmp_path: Path, model_cfg: dict, detector: str, capsys) -> None:
    """Run the tools on ``model_cfg`` (num_classes left to the tools); ONNX export must fail
    with one line naming ``detector``."""
    config, checkpoint = write_tiny(tmp_path, model_cfg, with_data=True, name="model")
    results = tmp_path / "results.json"
    assert main(["test", str(config), str(checkpoint), "--out", str(results)]) == 0
    printed = capsys.readouterr().out
    assert "Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ]" in printed
    detections = json.loads(results.read_text())
    assert detections and {d["category_id"] for d in detections} <= {1, 2, 3}

    image = tmp_path / "image.png"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (50, 70, 3), dtype=np.uint8)).save(image)
    preds = tmp_path / "preds.json"
    assert main(["infer", str(config), str(checkpoint), str(image), "--out", str(preds),
                 "--score-thr", "0.0"]) == 0
    (record,) = json.loads(preds.read_text()).values()
    assert record["height"] == 50 and record["width"] == 70 and record["predictions"]
    for prediction in record["predictions"]:
        box = prediction["bbox"]
        assert box["x_min"] >= 0 and box["x_min"] + box["width"] <= 70 + 1e-3

    report = tmp_path / "flops.json"
    assert main(["flops", str(config), "--checkpoint", str(checkpoint), "--shape", "64",
                 "--json-out", str(report)]) == 0
    counted = json.loads(report.read_text())
    assert counted["total_flops"] > 0 and counted["total_params"] > 0

    capsys.readouterr()
    assert main(["export-onnx", str(config), str(checkpoint), str(tmp_path / "model.onnx"),
                 "--shape", "64"]) != 0
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and detector in error[0] and "not supported" in error[0]
