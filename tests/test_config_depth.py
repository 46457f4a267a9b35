"""``--cfg-options model.backbone.depth=N`` works on a shipped recipe without touching the neck.

The r50 recipes leave ``neck.in_channels`` out; the detector takes it from the backbone's
``out_channels``, so a ResNet-18/34 (basic blocks: 128/256/512 channels) or ResNet-101 (same
channels as ResNet-50) recipe builds and trains as it is.
"""

from __future__ import annotations

import pytest
import torch

from detbox.apis.build import fill_num_classes
from detbox.config import apply_options, load_config
from detbox.data.build import build_dataloader
from detbox.errors import ConfigError
from detbox.registry import MODELS
from tests.conftest import REPO_ROOT
from tests.data.coco_factory import CATEGORIES, box_annotation, image_entry, write_coco

RETINANET = REPO_ROOT / "configs/retinanet/retinanet_r50_fpn_1x_coco.py"
CHANNELS = {18: [128, 256, 512], 34: [128, 256, 512], 101: [512, 1024, 2048]}


def tiny_recipe(tmp_path, depth: int):
    images = [image_entry(1, 64, 48), image_entry(2, 48, 64)]
    annotations = [box_annotation(1, 1, 1, [4, 6, 20, 18]),
                   box_annotation(2, 2, 2, [10, 8, 24, 30])]
    ann_file, img_dir = write_coco(tmp_path, images, annotations, CATEGORIES)
    cfg = load_config(RETINANET)
    apply_options(cfg, {
        "model.backbone.depth": depth,
        "model.bbox_head.num_classes": None,  # the recipe's 80 COCO classes; these data have 2
        "train_dataloader.dataset.ann_file": str(ann_file),
        "train_dataloader.dataset.img_dir": str(img_dir),
        "train_dataloader.dataset.pipeline.2.scale": (64, 64),
        "train_dataloader.num_workers": 0,
    })
    return cfg


@pytest.mark.parametrize("depth", [18, 34, 101])
def test_retinanet_recipe_trains_with_another_depth(tmp_path, depth):
    cfg = tiny_recipe(tmp_path, depth)
    assert "in_channels" not in cfg.model.neck
    loader = build_dataloader(cfg.train_dataloader, training=True)
    fill_num_classes(cfg, loader.dataset.class_names, source="tiny COCO")
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    assert model.neck.in_channels == CHANNELS[depth] == model.backbone.out_channels

    batch = next(iter(loader))
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.01)
    model.train()
    losses = model.loss(batch)
    total = sum(losses.values())
    assert torch.isfinite(total)
    total.backward()
    optimizer.step()

    model.eval()
    with torch.no_grad():
        results = model.predict(batch)
    assert len(results) == len(batch.samples)


def test_an_explicit_neck_in_channels_is_kept_and_checked():
    cfg = load_config(RETINANET)
    apply_options(cfg, {"model.backbone.depth": 18, "model.neck.in_channels": [128, 256, 512]})
    assert MODELS.build(cfg.model).neck.in_channels == [128, 256, 512]
    apply_options(cfg, {"model.neck.in_channels": [512, 1024, 2048]})
    # wrong for ResNet-18: a build-time error naming both, not a conv error at the first image
    with pytest.raises(ConfigError, match=r"\[512, 1024, 2048\] disagree .*\[128, 256, 512\]"):
        MODELS.build(cfg.model)


def test_a_backbone_without_out_channels_needs_neck_in_channels():
    cfg = load_config(RETINANET)
    cfg.model.backbone = torch.nn.Identity()
    with pytest.raises(ConfigError, match="neck.in_channels is not set"):
        MODELS.build(cfg.model)
