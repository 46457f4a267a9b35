"""`detbox test`, `infer`, `flops`, `benchmark` and `export-onnx` on tiny GHM / FreeAnchor /
RepPoints / Guided Anchoring detectors: numbers checked, not just exit codes."""

import copy
import json

import numpy as np
import pytest
import torch
from PIL import Image

from detbox.cli.main import main
from tests.tiny_detector import CLASS_NAMES, RETINANET, write_tiny


def _retina_variant(**head):
    cfg = copy.deepcopy(RETINANET)
    cfg["bbox_head"].update(head)
    return cfg


MODELS = {
    "ghm": _retina_variant(loss_cls={"type": "GHMC", "bins": 30},
                           loss_bbox={"type": "GHMR", "loss_weight": 10.0}),
    "free_anchor": _retina_variant(type="FreeAnchorRetinaHead"),
    "reppoints": {
        **copy.deepcopy(RETINANET), "type": "RepPointsDetector",
        "bbox_head": {"type": "RepPointsHead", "in_channels": 16, "feat_channels": 16,
                      "point_feat_channels": 16, "stacked_convs": 1,
                      "strides": [8, 16, 32, 64], "nms_pre": 200, "max_per_img": 50},
    },
    "ga_retinanet": _retina_variant(
        type="GARetinaHead",
        approx_anchor_generator={"type": "AnchorGenerator", "strides": [8, 16, 32, 64],
                                 "octave_base_scale": 2},
        square_anchor_generator={"type": "AnchorGenerator", "strides": [8, 16, 32, 64],
                                 "ratios": [1.0], "scales": [2]},
        anchor_generator=None),
}
del MODELS["ga_retinanet"]["bbox_head"]["anchor_generator"]
EXPORTABLE = ("ghm", "free_anchor", "reppoints", "ga_retinanet")


@pytest.mark.parametrize("name", sorted(MODELS))
def test_test_infer_and_flops(name, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DETBOX_CACHE", str(tmp_path / "cache"))
    config, checkpoint = write_tiny(tmp_path, MODELS[name], with_data=True, name=name)
    assert main(["test", str(config), str(checkpoint)]) == 0
    out = capsys.readouterr().out
    assert "COCO bbox evaluation: 4 images, " in out and "Average Precision" in out

    images = tmp_path / "images"
    images.mkdir()
    Image.fromarray(np.full((48, 80, 3), 90, dtype=np.uint8)).save(images / "a.png")
    preds = tmp_path / "preds.json"
    assert main(["infer", str(config), str(checkpoint), str(images), "--out", str(preds),
                 "--score-thr", "0.2"]) == 0
    (record,) = json.loads(preds.read_text()).values()
    assert record["height"] == 48 and record["width"] == 80
    for prediction in record["predictions"]:
        box = prediction["bbox"]
        assert prediction["score"] >= 0.2 and prediction["class"]["name"] in CLASS_NAMES
        assert 0 <= box["x_min"] and box["x_min"] + box["width"] <= 80 + 1e-3
        assert 0 <= box["y_min"] and box["y_min"] + box["height"] <= 48 + 1e-3

    report_file = tmp_path / "flops.json"
    assert main(["flops", str(config), "--checkpoint", str(checkpoint), "--shape", "64",
                 "--json-out", str(report_file)]) == 0
    report = json.loads(report_file.read_text())
    modules = {m["name"]: m for m in report["modules"]}
    assert modules["bbox_head"]["flops"] > 0 and report["total_flops"] > modules["backbone"][
        "flops"]

    bench = tmp_path / "bench.json"
    assert main(["benchmark", str(config), str(checkpoint), "--shape", "48", "64",
                 "--num-images", "2", "--batch-size", "1", "--warmup", "1",
                 "--json-out", str(bench)]) == 0
    assert json.loads(bench.read_text())["images_per_second"] > 0


def _spread_location_scores(model):
    """Untrained, every location scores ~ the 0.01 prior, right at GA's location filter
    threshold; spread the scores so that float noise decides nothing."""
    torch.manual_seed(0)
    torch.nn.init.normal_(model.bbox_head.guide.conv_loc.weight, std=1.0)


@pytest.mark.parametrize("name", EXPORTABLE)
def test_export_onnx_matches_pytorch(name, tmp_path, capsys):
    init = _spread_location_scores if name == "ga_retinanet" else None
    config, checkpoint = write_tiny(tmp_path, MODELS[name], name=name, init=init)
    out = tmp_path / f"{name}.onnx"
    assert main(["export-onnx", str(config), str(checkpoint), str(out), "--shape", "64"]) == 0
    assert "onnxruntime matches PyTorch on all 4 images" in capsys.readouterr().out
