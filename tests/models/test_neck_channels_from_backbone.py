"""A neck reads its in_channels from the backbone: replacing a recipe's backbone with
``_delete_=True`` needs no edit of the neck, and a stated value that disagrees fails clearly.
Also: the timm / torchvision backbone recipes build without their weight files and load them."""

from __future__ import annotations

import json

import pytest
import torch
import torchvision

from detbox.apis.build import fill_num_classes
from detbox.cli.main import main
from detbox.config import load_config, merge_configs
from detbox.errors import ConfigError
from detbox.registry import MODELS
from tests.conftest import REPO_ROOT
from tests.models._helpers import tiny_retinanet_cfg
from tests.tiny_detector import write_tiny

CONFIGS = REPO_ROOT / "configs"
MOBILENET = {"_delete_": True, "type": "TorchvisionBackbone", "model_name": "mobilenet_v3_small",
             "out_indices": (1, 2, 3)}


def _build(cfg, num_classes: int = 80) -> torch.nn.Module:
    cfg = dict(cfg)
    names = ["circle", "square", "triangle"] if num_classes == 3 else [
        f"class{i}" for i in range(num_classes)]
    fill_num_classes(cfg, names, source="test")
    return MODELS.build(cfg["model"])


@pytest.mark.parametrize("recipe", [
    "retinanet/retinanet_r50_fpn_1x_coco.py",
    "mask_rcnn/mask_rcnn_r50_fpn_1x_coco.py",
    "libra_rcnn/libra_retinanet_r50_fpn_1x_coco.py",  # FPN then BFP: a NeckSequence
    "faster_rcnn/faster_rcnn_r18_fpn_synthetic.py",
])
def test_replacing_the_backbone_of_a_recipe_needs_no_neck_edit(recipe):
    cfg = merge_configs(load_config(CONFIGS / recipe).to_dict(),
                        {"model": {"backbone": MOBILENET}})
    assert set(cfg["model"]["backbone"]) == {"type", "model_name", "out_indices"}
    model = _build(cfg, 3 if "synthetic" in recipe else 80)
    fpn = model.neck[0] if type(model.neck).__name__ == "NeckSequence" else model.neck
    assert [conv.in_channels for conv in fpn.lateral_convs] == [24, 48, 576]


def test_a_child_recipe_file_with_delete_builds(tmp_path):
    recipe = tmp_path / "faster_rcnn_regnet_fpn.py"
    recipe.write_text(
        f"_base_ = ['{CONFIGS}/_base_/models/faster_rcnn_r50_fpn.py',\n"
        f"          '{CONFIGS}/_base_/datasets/synthetic_detection.py']\n"
        "model = dict(backbone=dict(_delete_=True, type='TorchvisionBackbone',\n"
        "                           model_name='regnet_y_400mf', out_indices=(0, 1, 2, 3)))\n")
    model = _build(load_config(recipe), 3)
    assert model.neck.in_channels == [48, 104, 208, 440]
    images = torch.zeros(1, 3, 64, 64)
    assert [f.shape[1] for f in model.eval().extract_feat(images)] == [256] * 5


def test_stated_in_channels_that_disagree_name_both_lists():
    cfg = {"type": "RetinaNet",
           "backbone": {"type": "ResNet", "depth": 18, "frozen_stages": -1, "norm": "BN",
                        "norm_eval": False},
           "neck": {"type": "FPN", "in_channels": [512, 1024, 2048], "out_channels": 16},
           "bbox_head": {"type": "RetinaHead", "num_classes": 2, "in_channels": 16,
                         "feat_channels": 16, "stacked_convs": 1}}
    with pytest.raises(ConfigError, match=r"neck.in_channels=\[512, 1024, 2048\] disagree with "
                                          r"the ResNet backbone's out_channels=\[128, 256, 512\]"):
        MODELS.build(cfg)
    cfg["neck"]["in_channels"] = [128, 256, 512]  # equal: accepted as before
    assert MODELS.build(cfg).neck.in_channels == [128, 256, 512]


def test_torchvision_recipe_builds_without_and_loads_its_weights_file(tmp_path, monkeypatch):
    cfg = load_config(
        CONFIGS / "torchvision_backbones/faster_rcnn_mobilenet_v3_large_fpn_1x_coco.py")
    monkeypatch.chdir(tmp_path)  # the recipe's weights path is relative: nothing is there yet
    model = _build(cfg)
    assert model.neck.in_channels == [24, 40, 112, 960]
    (tmp_path / "checkpoints").mkdir()
    torch.manual_seed(0)
    weights = torchvision.models.mobilenet_v3_large(weights=None).state_dict()
    torch.save(weights, tmp_path / "checkpoints/mobilenet_v3_large.pth")
    assert "mobilenet_v3_large.pth" in model.init_weights()
    loaded = model.backbone.body.state_dict()
    for key in ("features.4.block.0.0.weight", "features.4.block.0.1.running_var"):
        assert torch.equal(loaded[key], weights[key])


def test_timm_recipe_builds_without_and_loads_its_weights_file(tmp_path, monkeypatch):
    timm = pytest.importorskip("timm", reason='timm is optional: pip install "detbox[timm]"')
    cfg = load_config(CONFIGS / "timm/retinanet_convnext_tiny_fpn_1x_coco.py")
    monkeypatch.chdir(tmp_path)
    model = _build(cfg)
    assert model.neck.in_channels == [192, 384, 768]
    (tmp_path / "checkpoints").mkdir()
    torch.manual_seed(0)
    weights = timm.create_model("convnext_tiny", pretrained=False).state_dict()
    torch.save(weights, tmp_path / "checkpoints/convnext_tiny.pth")
    assert "convnext_tiny.pth" in model.init_weights()
    assert torch.equal(model.backbone.model.state_dict()["stages_2.blocks.0.conv_dw.weight"],
                       weights["stages.2.blocks.0.conv_dw.weight"])


@pytest.mark.parametrize("backbone", [
    {"type": "TorchvisionBackbone", "model_name": "mobilenet_v3_small"},
    {"type": "TimmBackbone", "model_name": "resnet18", "out_indices": (2, 3, 4)},
], ids=["torchvision", "timm"])
def test_flops_reports_the_backbone(tmp_path, capsys, backbone):
    if backbone["type"] == "TimmBackbone":
        pytest.importorskip("timm", reason='timm is optional: pip install "detbox[timm]"')
    cfg = tiny_retinanet_cfg(num_classes=3)
    cfg["backbone"] = backbone
    del cfg["neck"]["in_channels"]
    config, checkpoint = write_tiny(tmp_path, cfg, name="model")
    report = tmp_path / "flops.json"
    assert main(["flops", str(config), "--checkpoint", str(checkpoint), "--shape", "64",
                 "--json-out", str(report)]) == 0
    counted = json.loads(report.read_text())
    row = next(m for m in counted["modules"] if m["name"] == "backbone")
    assert row["type_name"] == backbone["type"] and 0 < row["flops"] < counted["total_flops"]
    assert backbone["type"] in capsys.readouterr().out
