"""Every backbone family end to end: a tiny Faster R-CNN on each trains a few steps (finite
losses, the backbone's weights change), and ``detbox flops`` counts a positive cost for it.

A new backbone family adds one entry to ``BACKBONES``: a small-width config with four
levels at strides 4-32, and the name of a parameter that must change while training (the
part the family adds, where there is one).
"""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest
import torch

import detbox.models  # noqa: F401  (registers the components)
from detbox.cli.main import main

from .two_stage._tiny import build, rectangles_batch, tiny_two_stage_cfg, train_steps

C2_C5 = (0, 1, 2, 3)
_RESNEXT = {"type": "ResNeXt", "depth": 50, "groups": 8, "base_width": 1,
            "out_indices": C2_C5, "frozen_stages": -1}
_HAS_TIMM = importlib.util.find_spec("timm") is not None

# name -> (backbone config, a backbone parameter that must change while training)
BACKBONES = {
    "resnet": ({"type": "ResNet", "depth": 18, "out_indices": C2_C5, "frozen_stages": -1,
                "norm": "GN", "norm_eval": False}, "layer1.0.conv1.weight"),
    "resnext": (_RESNEXT, "layer2.0.conv2.weight"),
    "dcn_resnet": ({**_RESNEXT, "dcn": {"type": "DCN"},
                    "stage_with_dcn": (False, True, True, True)},
                   "layer3.0.conv2.conv_offset.weight"),
    "gn_ws_resnet": ({"type": "ResNet", "depth": 18, "out_indices": C2_C5, "frozen_stages": -1,
                      "norm": "GN", "norm_eval": False, "conv_cfg": {"type": "ConvWS"}},
                     "layer2.0.conv1.weight"),
    "gcnet": ({**_RESNEXT, "plugins": [{"cfg": {"type": "ContextBlock", "ratio": 1 / 16},
                                        "stages": (False, True, True, True),
                                        "position": "after_conv3"}]},
              "layer3.0.after_conv3.channel_add.3.weight"),
    "generalized_attention": ({**_RESNEXT, "plugins": [{
        "cfg": {"type": "GeneralizedAttention", "num_heads": 8, "attention_type": "1111",
                "kv_stride": 2},
        "stages": (False, False, True, True), "position": "after_conv2"}]},
        "layer3.0.after_conv2.out_conv.weight"),
    "timm": ({"type": "TimmBackbone", "model_name": "resnet18", "out_indices": (1, 2, 3, 4)},
             "model.layer1.0.conv1.weight"),
    "torchvision_mobilenet_v3": ({"type": "TorchvisionBackbone",
                                  "model_name": "mobilenet_v3_small", "out_indices": C2_C5},
                                 None),
    "caffe_resnet": ({**_RESNEXT, "style": "caffe"}, "layer2.0.conv1.weight"),
    "hrnet": ({"type": "HRNet", "width": 8, "num_modules": (1, 1, 1), "num_blocks": (1, 1, 1, 1),
               "norm_eval": False}, "stage2.0.fuse_layers.0.1.0.weight"),
}


def _params(name: str) -> list:
    backbone, probe = BACKBONES[name]
    marks = []
    if backbone["type"] == "TimmBackbone":
        marks.append(pytest.mark.skipif(not _HAS_TIMM, reason='timm is optional: pip install '
                                        '"detbox[timm]"'))
    return pytest.param(name, marks=marks, id=name)


CASES = [_params(name) for name in BACKBONES]


def _detector(name: str) -> dict:
    cfg = tiny_two_stage_cfg("faster")
    cfg["backbone"] = dict(BACKBONES[name][0])
    del cfg["neck"]["in_channels"]  # from the backbone
    return cfg


@pytest.mark.parametrize("name", CASES)
def test_tiny_faster_rcnn_trains_on_the_backbone(name):
    model = build(_detector(name))
    assert len(model.neck.in_channels) == 4
    before = {n: p.detach().clone() for n, p in model.backbone.named_parameters()
              if p.requires_grad}
    history = train_steps(model, rectangles_batch(), 2)
    assert all(math.isfinite(v) for step in history for v in step.values())
    params = dict(model.backbone.named_parameters())
    changed = [n for n, p in before.items() if not torch.equal(params[n], p)]
    assert len(changed) > len(before) // 2, sorted(set(before) - set(changed))[:5]
    probe = BACKBONES[name][1]
    if probe is not None:
        assert probe in changed


@pytest.mark.parametrize("name", CASES)
def test_flops_counts_the_backbone(name, tmp_path):
    config = tmp_path / f"{name}.json"
    config.write_text(json.dumps({"model": _detector(name)}))
    report = tmp_path / "flops.json"
    assert main(["flops", str(config), "--num-classes", "2", "--shape", "64",
                 "--json-out", str(report)]) == 0
    counted = json.loads(Path(report).read_text())
    row = next(m for m in counted["modules"] if m["name"] == "backbone")
    assert 0 < row["flops"] < counted["total_flops"]
