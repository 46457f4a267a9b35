"""ONNX export of the cascades: Cascade (Mask) R-CNN match onnxruntime; HTC is refused with a
one-line error naming it."""

import copy

import pytest

from detbox.deploy.onnx_export import export_onnx, verification_images, verify_onnx
from detbox.errors import DetboxError
from tests.tiny_detector import build_tiny, tiny_config, two_stage_model

pytest.importorskip("onnxruntime")


def cascade_model(kind: str = "FasterRCNN") -> dict:
    """The tiny two-stage model of ``tests.tiny_detector`` with a 3-stage cascade RoI head."""
    cfg = copy.deepcopy(two_stage_model(kind))
    cfg["type"] = "CascadeRCNN"
    cfg["roi_head"]["type"] = "CascadeRoIHead"
    return cfg


def htc_model() -> dict:
    cfg = copy.deepcopy(two_stage_model("MaskRCNN"))
    cfg["type"] = "HybridTaskCascade"
    cfg["roi_head"]["type"] = "HTCRoIHead"
    cfg["roi_head"]["mask_head"]["type"] = "HTCMaskHead"
    return cfg


@pytest.mark.parametrize("kind", ["FasterRCNN", "MaskRCNN"], ids=["cascade", "cascade_mask"])
def test_onnxruntime_matches_pytorch(kind, tmp_path):
    model = build_tiny(tiny_config(cascade_model(kind)))
    path = export_onnx(model, tmp_path / "model.onnx", shape=(64, 64))
    reports = verify_onnx(model, path, verification_images((90, 120)))
    for report in reports[:-1]:
        assert report.ok, report.problems
        assert report.num_torch == report.num_onnx > 10
        assert report.max_box_diff < 1e-2 and report.max_score_diff < 1e-4
    assert reports[-1].ok


def test_htc_export_is_refused_with_one_clear_line(tmp_path):
    model = build_tiny(tiny_config(htc_model()))
    with pytest.raises(DetboxError) as info:
        export_onnx(model, tmp_path / "model.onnx", shape=(64, 64))
    message = str(info.value)
    assert "HybridTaskCascade" in message and "not supported" in message
    assert "\n" not in message
    assert not (tmp_path / "model.onnx").exists()
