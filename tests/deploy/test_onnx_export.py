"""ONNX export: onnxruntime gives PyTorch's detections, and the check notices when it does not."""

import dataclasses

import numpy as np
import pytest
import torch

from detbox.deploy.onnx_export import (
    compare_detections,
    export_onnx,
    verification_images,
    verify_onnx,
)
from detbox.deploy.onnx_runtime import OnnxDetector
from detbox.structures import Instances
from tests.tiny_detector import RETINANET, build_tiny, tiny_config, two_stage_model

pytest.importorskip("onnxruntime")


@pytest.mark.parametrize("model_cfg", [RETINANET, two_stage_model("FasterRCNN"),
                                       two_stage_model("MaskRCNN")],
                         ids=["retinanet", "faster_rcnn", "mask_rcnn"])
def test_onnxruntime_matches_pytorch(model_cfg, tmp_path):
    model = build_tiny(tiny_config(model_cfg))
    path = export_onnx(model, tmp_path / "model.onnx", shape=(64, 64))
    # Traced at 64x64, run at 96x96 and 64x96 (after the pipeline), then the zero-detection case.
    reports = verify_onnx(model, path, verification_images((90, 120)))
    assert {r.input_shape for r in reports} == {(96, 96), (64, 96)}
    for report in reports[:-1]:
        assert report.ok, report.problems
        assert report.num_torch == report.num_onnx > 10
        assert report.max_box_diff < 1e-2 and report.max_score_diff < 1e-4
    blank = reports[-1]
    assert blank.ok and blank.num_torch == blank.num_onnx == 0

    runtime = OnnxDetector(path)
    assert runtime.class_names == ["circle", "square", "triangle"]
    result = runtime([np.zeros((50, 70, 3), dtype=np.uint8)])[0]
    assert result.boxes[:, 2].max() <= 70 and result.boxes[:, 3].max() <= 50  # original coords
    if model_cfg["type"] == "MaskRCNN":
        assert result.masks is not None and result.masks.shape[1:] == (50, 70)


def test_a_model_changed_after_export_is_caught(tmp_path):
    model = build_tiny(tiny_config())
    path = export_onnx(model, tmp_path / "model.onnx", shape=(64, 64))
    with torch.no_grad():
        model.bbox_head.box_deltas.bias.add_(0.05)
    reports = verify_onnx(model, path, verification_images((64, 64))[:1])
    assert not reports[0].ok and "has no counterpart" in reports[0].problems[0]


def _instances(boxes, labels, scores):
    return Instances(boxes=torch.tensor(boxes, dtype=torch.float32),
                     labels=torch.tensor(labels), scores=torch.tensor(scores))


def test_compare_detections_tolerances():
    ref = _instances([[0, 0, 10, 10], [5, 5, 20, 20], [1, 1, 4, 4]], [0, 1, 2], [0.9, 0.6, 0.3005])
    close = dataclasses.replace(ref, boxes=ref.boxes + 0.01, scores=ref.scores + 1e-4)
    assert compare_detections(ref, close, score_thr=0.3) == []
    # The third one is within the score tolerance of the threshold: it may be missing.
    assert compare_detections(ref, close[:2], score_thr=0.3) == []
    moved = dataclasses.replace(ref, boxes=ref.boxes + torch.tensor([[0.0], [1.0], [0.0]]))
    problems = compare_detections(ref, moved, score_thr=0.3)
    assert len(problems) == 2 and "label 1" in problems[0]  # one unmatched on each side
    relabelled = dataclasses.replace(ref, labels=torch.tensor([0, 2, 2]))
    assert len(compare_detections(ref, relabelled, score_thr=0.3)) == 2
