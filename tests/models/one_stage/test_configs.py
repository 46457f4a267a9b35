"""Every FCOS / ATSS / GFL / FoveaBox config builds its detector and trains a step."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from detbox.apis.build import fill_num_classes
from detbox.config import load_config
from detbox.models.detectors import SingleStageDetector
from detbox.registry import MODELS
from detbox.structures import ImageBatch
from tests.models._helpers import make_sample, rectangle_image

CONFIGS = Path(__file__).resolve().parents[3] / "configs"
RECIPES = {
    "fcos/fcos_r50_fpn_gn-head_1x_coco.py": "FCOSHead",
    "fcos/fcos_r18_fpn_synthetic.py": "FCOSHead",
    "atss/atss_r50_fpn_1x_coco.py": "ATSSHead",
    "atss/atss_r18_fpn_synthetic.py": "ATSSHead",
    "gfl/gfl_r50_fpn_1x_coco.py": "GFLHead",
    "gfl/gfl_r18_fpn_synthetic.py": "GFLHead",
    "foveabox/fovea_r50_fpn_4x4_1x_coco.py": "FoveaHead",
    "foveabox/fovea_r18_fpn_synthetic.py": "FoveaHead",
}


@pytest.mark.parametrize("name", list(RECIPES))
def test_recipe_builds_and_trains_a_step(name):
    cfg = load_config(CONFIGS / name)
    coco = name.endswith("_coco.py")
    num_classes = 80 if coco else 3
    fill_num_classes(cfg, [f"class{i}" for i in range(num_classes)], source="test")
    if coco:
        assert cfg["model"]["init_cfg"]["backbone_checkpoint"] == "torchvision://resnet50"
    torch.manual_seed(0)
    model = MODELS.build(cfg["model"])
    assert isinstance(model, SingleStageDetector) and model.num_classes == num_classes
    assert type(model.bbox_head).__name__ == RECIPES[name]
    batch = ImageBatch(images=rectangle_image((8, 8, 40, 56)),
                       samples=[make_sample([[8.0, 8, 40, 56]], [2])])
    losses = model.train().loss(batch)
    assert all(torch.isfinite(v) and v > 0 for v in losses.values()), losses
