"""ONNX export of the FCOS, ATSS, GFL, FoveaBox, RetinaSepBN, GA-RetinaNet and RepPoints heads:
onnxruntime gives PyTorch's detections at sizes other than the traced one, and none on a blank
image."""

from __future__ import annotations

import copy

import pytest
import torch

from detbox.deploy.onnx_export import export_onnx, verification_images, verify_onnx
from tests.tiny_detector import RETINANET, build_tiny, tiny_config

pytest.importorskip("onnxruntime")

STRIDES = [8, 16, 32, 64]
HEADS = {
    "FCOS": {"type": "FCOSHead", "point_generator": {"type": "PointGenerator",
                                                     "strides": STRIDES},
             "assigner": {"type": "FCOSAssigner",
                          "regress_ranges": [(-1, 16), (16, 32), (32, 64), (64, 1e8)]}},
    "FCOS_sqrt": {"type": "FCOSHead", "point_generator": {"type": "PointGenerator",
                                                          "strides": STRIDES, "offset": 0.0},
                  "assigner": {"type": "FCOSAssigner",
                               "regress_ranges": [(-1, 16), (16, 32), (32, 64), (64, 1e8)]},
                  "norm_on_bbox": True, "scale_per_level": False, "score_mode": "sqrt"},
    "ATSS": {"type": "ATSSHead", "anchor_generator": {
        "type": "AnchorGenerator", "strides": STRIDES, "ratios": [1.0], "octave_base_scale": 4,
        "scales_per_octave": 1}},
    "GFL": {"type": "GFLHead", "reg_max": 8, "anchor_generator": {
        "type": "AnchorGenerator", "strides": STRIDES, "ratios": [1.0], "octave_base_scale": 4,
        "scales_per_octave": 1}},
    "FOVEA": {"type": "FoveaHead", "strides": STRIDES, "base_edges": [16, 32, 64, 128],
              "assigner": {"type": "FoveaAssigner",
                           "scale_ranges": [(1, 32), (16, 64), (32, 128), (64, 256)]}},
    # tower convs shared over the levels, a BN per level (NAS-FPN's head)
    "RetinaNet_sepbn": {"type": "RetinaSepBNHead", "norm": "BN", "anchor_generator": {
        "type": "AnchorGenerator", "strides": STRIDES, "octave_base_scale": 4}},
    # deformable convolutions: exported as ONNX DeformConv (opset 19)
    "RetinaNet_guided": {
        "type": "GARetinaHead", "anchor_generator": None,
        "approx_anchor_generator": {"type": "AnchorGenerator", "strides": STRIDES,
                                    "octave_base_scale": 2},
        "square_anchor_generator": {"type": "AnchorGenerator", "strides": STRIDES,
                                    "ratios": [1.0], "scales": [2]},
        "max_per_img": 1000},  # random weights score alike: no near-tie at the cap
    "RepPointsDetector": {"type": "RepPointsHead", "strides": STRIDES, "anchor_generator": None,
                          "point_feat_channels": 16, "max_per_img": 1000},
}

SPREAD = {"RetinaNet_guided": ("guide.conv_loc", "cls_logits"),
          "RepPointsDetector": ("cls_logits",)}


def _model_cfg(name: str) -> dict:
    cfg = copy.deepcopy(RETINANET)
    cfg["type"] = name.split("_")[0]
    cfg["bbox_head"] = {"in_channels": 16, "feat_channels": 16, "stacked_convs": 1,
                        "norm": None, "nms_pre": 200, "max_per_img": 50, "score_thr": 0.05,
                        **HEADS[name]}
    if "anchor_generator" in cfg["bbox_head"] and cfg["bbox_head"]["anchor_generator"] is None:
        del cfg["bbox_head"]["anchor_generator"]
    return cfg


@pytest.mark.parametrize("name", list(HEADS))
def test_onnxruntime_matches_pytorch_for_dense_heads(name, tmp_path):
    model = build_tiny(tiny_config(_model_cfg(name)))
    if name in SPREAD:
        # untrained, these heads score every location alike (GA: right at the location
        # filter's threshold); spread the scores so that no near-ties decide what is kept
        torch.manual_seed(0)
        for layer in SPREAD[name]:
            torch.nn.init.normal_(model.bbox_head.get_submodule(layer).weight, std=1.0)
    path = export_onnx(model, tmp_path / "model.onnx", shape=(64, 64))
    reports = verify_onnx(model, path, verification_images((90, 120)))
    assert {r.input_shape for r in reports} == {(96, 96), (64, 96)}
    for report in reports[:-1]:
        assert report.ok, report.problems
        assert report.num_torch == report.num_onnx > 10
        assert report.max_box_diff < 1e-2 and report.max_score_diff < 1e-4
    blank = reports[-1]
    assert blank.ok and blank.num_torch == blank.num_onnx
