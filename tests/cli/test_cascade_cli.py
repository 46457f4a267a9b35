"""`detbox test`, `infer`, `flops` and `export-onnx` on tiny Cascade Mask R-CNN / HTC models."""

import json

import numpy as np
import pytest
from PIL import Image

from detbox.cli.main import main
from tests.deploy.test_onnx_cascade import cascade_model, htc_model
from tests.tiny_detector import write_tiny


@pytest.fixture(scope="module")
def cascade_mask(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cascade")
    return [str(p) for p in write_tiny(folder, cascade_model("MaskRCNN"), with_data=True,
                                       name="cascade_mask")]


def test_test_evaluates_a_cascade_mask_rcnn(cascade_mask, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DETBOX_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "results.json"
    assert main(["test", *cascade_mask, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "Average Precision" in printed and "| triangle |" in printed
    results = json.loads(out.read_text())
    assert results and all(len(r["bbox"]) == 4 and r["category_id"] in (1, 2, 3)
                           for r in results)


def test_infer_writes_boxes_and_masks_in_image_coordinates(cascade_mask, tmp_path):
    image = tmp_path / "a.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 50, 3), dtype=np.uint8)
                    ).save(image)
    preds = tmp_path / "preds.json"
    assert main(["infer", *cascade_mask, str(image), "--out", str(preds),
                 "--score-thr", "0.1"]) == 0
    (record,) = json.loads(preds.read_text()).values()
    assert (record["height"], record["width"]) == (40, 50) and record["predictions"]
    for pred in record["predictions"]:
        box = pred["bbox"]
        assert box["x_min"] + box["width"] <= 50 + 1e-3
        assert box["y_min"] + box["height"] <= 40 + 1e-3
        assert pred["score"] >= 0.1 and "mask" in pred


def test_flops_counts_every_stage(cascade_mask, tmp_path):
    report_file = tmp_path / "flops.json"
    assert main(["flops", cascade_mask[0], "--checkpoint", cascade_mask[1], "--shape", "64",
                 "--json-out", str(report_file)]) == 0
    modules = {m["name"]: m for m in json.loads(report_file.read_text())["modules"]}
    stages = [modules[f"roi_head.bbox_heads.{t}"]["flops"] for t in range(3)]
    assert stages[0] > 0 and stages[0] == stages[1] == stages[2]  # same RoIs, same heads


def test_export_onnx_of_htc_is_one_clear_line(tmp_path, capsys):
    config, checkpoint = write_tiny(tmp_path, htc_model(), name="htc")
    code = main(["export-onnx", str(config), str(checkpoint), str(tmp_path / "htc.onnx"),
                 "--shape", "64"])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "HybridTaskCascade" in err
