"""Every two-stage config builds, with num_classes filled from a dataset."""

from pathlib import Path

import pytest
import torch

from detbox.apis.build import fill_num_classes
from detbox.config import load_config
from detbox.models.detectors import RPN, TwoStageDetector
from detbox.registry import MODELS

CONFIGS = Path(__file__).resolve().parents[3] / "configs"
RECIPES = [
    "faster_rcnn/faster_rcnn_r50_fpn_1x_coco.py",
    "mask_rcnn/mask_rcnn_r50_fpn_1x_coco.py",
    "mask_rcnn/mask_rcnn_r50_c4_1x_coco.py",
    "ms_rcnn/ms_rcnn_r50_fpn_1x_coco.py",
    "rpn/rpn_r50_fpn_1x_coco.py",
]


@pytest.mark.parametrize("name", RECIPES)
def test_recipe_builds(name):
    cfg = load_config(CONFIGS / name)
    fill_num_classes(cfg, [f"class{i}" for i in range(80)], source="test")
    torch.manual_seed(0)
    model = MODELS.build(cfg["model"])
    assert isinstance(model, (TwoStageDetector, RPN))
    if isinstance(model, TwoStageDetector):
        assert model.num_classes == 80
        assert model.roi_head.bbox_head.fc_cls.out_features == 81


@pytest.mark.parametrize("name", sorted(p.name for p in (CONFIGS / "torchvision").glob("*.py")))
def test_torchvision_configs_build_for_their_classes(name):
    cfg = load_config(CONFIGS / "torchvision" / name)
    expected = 1 if name.endswith("_pennfudan.py") else 80  # COCO's 80 or Penn-Fudan's person
    assert cfg["num_classes"] == expected
    fill_num_classes(cfg, [f"class{i}" for i in range(expected)], source="test")
    model = MODELS.build(cfg["model"])
    assert model.num_classes == expected
    assert cfg["train_dataloader"] and cfg["val_dataloader"] and cfg["optimizer"]["lr"] > 0
