"""The ``*_r50_caffe_fpn_1x_coco`` recipes: caffe-style backbone, BGR input with std 1, and the
converted MSRA checkpoint; otherwise the same as their pytorch-style twins."""

from __future__ import annotations

import pytest

from detbox.apis.build import fill_num_classes
from detbox.config import load_config
from detbox.data.transforms import Compose, Normalize
from detbox.registry import MODELS
from tests.conftest import REPO_ROOT

CONFIGS = REPO_ROOT / "configs"
CAFFE_RECIPES = {
    "faster_rcnn/faster_rcnn_r50_caffe_fpn_1x_coco.py":
        "faster_rcnn/faster_rcnn_r50_fpn_1x_coco.py",
    "mask_rcnn/mask_rcnn_r50_caffe_fpn_1x_coco.py": "mask_rcnn/mask_rcnn_r50_fpn_1x_coco.py",
    "ms_rcnn/ms_rcnn_r50_caffe_fpn_1x_coco.py": "ms_rcnn/ms_rcnn_r50_fpn_1x_coco.py",
    "retinanet/retinanet_r50_caffe_fpn_1x_coco.py": "retinanet/retinanet_r50_fpn_1x_coco.py",
}
CAFFE_NORM = {"type": "Normalize", "mean": [103.530, 116.280, 123.675], "std": [1.0, 1.0, 1.0],
              "to_rgb": False}


def _normalize_steps(cfg) -> list[dict]:
    pipelines = [cfg.test_pipeline, cfg.train_dataloader.dataset.pipeline,
                 cfg.val_dataloader.dataset.pipeline]
    return [dict(step) for steps in pipelines for step in steps if step["type"] == "Normalize"]


@pytest.mark.parametrize("recipe", sorted(CAFFE_RECIPES))
def test_caffe_recipe_differs_from_its_twin_only_in_backbone_input_and_weights(recipe):
    cfg = load_config(CONFIGS / recipe)
    twin = load_config(CONFIGS / CAFFE_RECIPES[recipe])
    assert cfg.model.backbone.style == "caffe"
    assert cfg.model.init_cfg == {"backbone_checkpoint": "checkpoints/resnet50_msra_caffe.pth"}
    assert _normalize_steps(cfg) == [CAFFE_NORM] * 3
    twin_norm = dict(twin.img_norm, type="Normalize")
    for steps in (cfg.test_pipeline, cfg.train_pipeline, cfg.train_dataloader.dataset.pipeline,
                  cfg.val_dataloader.dataset.pipeline):
        steps[:] = [twin_norm if step["type"] == "Normalize" else step for step in steps]
    for config in (cfg, twin):
        config.pop("img_norm"), config.pop("_filename", None), config.model.pop("init_cfg")
    cfg.model.backbone.pop("style")
    assert cfg == twin


@pytest.mark.parametrize("recipe", sorted(CAFFE_RECIPES))
def test_caffe_recipe_builds_a_caffe_backbone_and_a_bgr_test_pipeline(recipe):
    cfg = load_config(CONFIGS / recipe)
    fill_num_classes(cfg, [f"class_{i}" for i in range(80)], source="the test")
    model = MODELS.build(cfg.model)  # reads no checkpoint (init_weights does)
    assert model.backbone.layer2[0].conv1.stride == (2, 2)
    assert model.backbone.layer2[0].conv2.stride == (1, 1)
    pipeline = Compose(cfg.test_pipeline)
    assert any(isinstance(t, Normalize) and not t.to_rgb for t in pipeline.transforms)
