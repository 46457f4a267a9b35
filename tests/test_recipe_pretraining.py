"""COCO recipes start from ImageNet backbones and state their reference batch; the demos do not
need either, and building any recipe (for inference) never reads or downloads a checkpoint."""

from __future__ import annotations

import argparse
import warnings

import pytest
import torch

from detbox.apis.build import fill_num_classes
from detbox.cli.train import apply_flags
from detbox.config import apply_options, load_config
from detbox.errors import ConfigError
from detbox.registry import MODELS
from tests.conftest import REPO_ROOT

CONFIGS = REPO_ROOT / "configs"
COCO_RECIPES = sorted(
    p for folder in ("retinanet", "faster_rcnn", "mask_rcnn", "ms_rcnn", "rpn", "libra_rcnn",
                     "fast_rcnn")
    for p in (CONFIGS / folder).glob("*_coco.py")
)
FROM_SCRATCH = sorted(CONFIGS.glob("**/*_synthetic.py"))
# Recipes whose backbone is not a ResNet-50 (tests/models/test_resnext_dcn_configs.py checks
# that each checkpoint fits its backbone).
OTHER_CHECKPOINTS = {
    "faster_rcnn_x101_32x4d_fpn_1x_coco.py": "checkpoints/resnext101_32x4d.pth",
    "faster_rcnn_x101_64x4d_fpn_1x_coco.py": "torchvision://resnext101_64x4d",
    "mask_rcnn_x101_32x4d_fpn_1x_coco.py": "checkpoints/resnext101_32x4d.pth",
    "retinanet_x101_32x4d_fpn_1x_coco.py": "checkpoints/resnext101_32x4d.pth",
    # MSRA's caffe-style ResNet-50, converted by ``detbox convert-weights detectron-caffe``.
    "faster_rcnn_r50_caffe_fpn_1x_coco.py": "checkpoints/resnet50_msra_caffe.pth",
    "mask_rcnn_r50_caffe_fpn_1x_coco.py": "checkpoints/resnet50_msra_caffe.pth",
    "ms_rcnn_r50_caffe_fpn_1x_coco.py": "checkpoints/resnet50_msra_caffe.pth",
    "retinanet_r50_caffe_fpn_1x_coco.py": "checkpoints/resnet50_msra_caffe.pth",
}


def test_every_coco_recipe_has_a_pretrained_backbone_and_a_reference_batch():
    assert len(COCO_RECIPES) == 19  # faster_rcnn_r50_fpn_90k_coco.py counts iterations
    for path in COCO_RECIPES:
        cfg = load_config(path)
        checkpoint = OTHER_CHECKPOINTS.get(path.name, "torchvision://resnet50")
        assert cfg.model.init_cfg == {"backbone_checkpoint": checkpoint}, path
        assert cfg.auto_scale_lr == {"base_batch_size": 16, "enable": False}, path


def test_init_cfg_none_on_the_command_line_skips_pretraining():
    cfg = load_config(COCO_RECIPES[0])
    apply_options(cfg, {"model.init_cfg": None})
    assert cfg.model.init_cfg is None


def test_building_a_recipe_reads_no_checkpoint(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(torch.hub, "download_url_to_file",
                        lambda *a, **k: pytest.fail("building must not download"))
    cfg = load_config(CONFIGS / "retinanet/retinanet_r50_fpn_1x_coco.py")
    model = MODELS.build(cfg.model)
    assert model.init_cfg == {"backbone_checkpoint": "torchvision://resnet50"}


@pytest.mark.parametrize("path", FROM_SCRATCH, ids=lambda p: p.name)
def test_configs_trained_from_scratch_do_not_warn(path):
    cfg = load_config(path)
    fill_num_classes(cfg, ["circle", "square", "triangle"], source="test")
    model = MODELS.build(cfg.model)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.init_weights()


def test_auto_scale_lr_flag_turns_the_recipe_scaling_on():
    cfg = load_config(COCO_RECIPES[0])
    apply_flags(cfg, argparse.Namespace(amp=None, auto_scale_lr=True))
    assert cfg.auto_scale_lr == {"base_batch_size": 16, "enable": True}
    demo = load_config(CONFIGS / "demo/retinanet_r18_fpn_synthetic.py")
    with pytest.raises(ConfigError, match="--auto-scale-lr needs auto_scale_lr"):
        apply_flags(demo, argparse.Namespace(amp=None, auto_scale_lr=True))


@pytest.mark.slow
def test_training_starts_from_the_backbone_checkpoint(tmp_path, monkeypatch):
    from detbox.cli.main import main
    from detbox.engine import extract_state_dict, load_checkpoint
    from tests.models.test_pretrained import save_random_resnet18

    monkeypatch.setenv("DETBOX_CACHE", str(tmp_path / "cache"))
    state = save_random_resnet18(tmp_path / "r18.pth")
    work = tmp_path / "run"
    code = main([
        "train", str(CONFIGS / "demo/retinanet_r18_fpn_synthetic.py"), "--work-dir", str(work),
        "--cfg-options", "train_dataloader.dataset.num_images=2",
        "train_dataloader.dataset.image_size=64", "train_dataloader.batch_size=2",
        "train_dataloader.num_workers=0", "train_cfg.max_epochs=1", "train_cfg.val_interval=0",
        "model.backbone.frozen_stages=0",  # the stem keeps the checkpoint's weights
        f"model.init_cfg=dict(backbone_checkpoint='{tmp_path / 'r18.pth'}')",
    ])
    assert code == 0
    trained = extract_state_dict(load_checkpoint(work / "latest.pth"))
    assert torch.equal(trained["backbone.conv1.weight"], state["conv1.weight"])
    log = next(work.glob("*.log")).read_text()
    assert "lr 0.002 as configured" in log
