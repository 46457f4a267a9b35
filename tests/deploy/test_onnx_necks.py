"""ONNX export of a Faster R-CNN whose neck is a PAFPN or an FPN with CARAFE upsampling."""

import pytest
import torch

from detbox.deploy.onnx_export import export_onnx, verification_images, verify_onnx
from tests.tiny_detector import build_tiny, tiny_config, two_stage_model

pytest.importorskip("onnxruntime")


def pafpn_model() -> dict:
    model = two_stage_model("FasterRCNN")
    model["neck"]["type"] = "PAFPN"
    return model


def carafe_model() -> dict:
    model = two_stage_model("FasterRCNN")
    model["neck"]["upsample_cfg"] = {"type": "carafe", "compressed_channels": 8}
    return model


@pytest.mark.parametrize("make_model", [pafpn_model, carafe_model], ids=["pafpn", "carafe"])
def test_onnxruntime_matches_pytorch(make_model, tmp_path):
    model = build_tiny(tiny_config(make_model()))
    with torch.no_grad():  # the deeper neck saturates the random scores: spread them out again
        model.roi_head.bbox_head.fc_cls.weight.mul_(0.2)
    path = export_onnx(model, tmp_path / "model.onnx", shape=(64, 64))
    reports = verify_onnx(model, path, verification_images((90, 120)))
    for report in reports[:-1]:
        assert report.ok, report.problems
        assert report.num_torch == report.num_onnx > 10
        assert report.max_box_diff < 1e-2 and report.max_score_diff < 1e-4
    blank = reports[-1]
    assert blank.ok and blank.num_torch == blank.num_onnx == 0
