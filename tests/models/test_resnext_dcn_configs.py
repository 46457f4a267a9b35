"""The ResNeXt-101 and DCN COCO recipes: backbones, their ImageNet checkpoints, and loading one."""

from __future__ import annotations

import pytest
import torch
import torchvision

from detbox.apis.build import fill_num_classes
from detbox.config import apply_options, load_config
from detbox.data.build import build_dataloader
from detbox.errors import CheckpointError
from detbox.models.layers import DeformConv, ModulatedDeformConv
from detbox.models.pretrained import TORCHVISION_NAMES, torchvision_name
from detbox.registry import MODELS
from tests.conftest import REPO_ROOT
from tests.data.coco_factory import CATEGORIES, box_annotation, image_entry, write_coco

CONFIGS = REPO_ROOT / "configs"
C3_C5 = (False, True, True, True)
NO_DCN = (False, False, False, False)
# recipe -> (backbone arch, deformable conv type or None, images per GPU)
RECIPES = {
    "faster_rcnn/faster_rcnn_x101_32x4d_fpn_1x_coco.py": ("resnext101_32x4d", None, 2),
    "faster_rcnn/faster_rcnn_x101_64x4d_fpn_1x_coco.py": ("resnext101_64x4d", None, 2),
    "mask_rcnn/mask_rcnn_x101_32x4d_fpn_1x_coco.py": ("resnext101_32x4d", None, 2),
    "retinanet/retinanet_x101_32x4d_fpn_1x_coco.py": ("resnext101_32x4d", None, 2),
    "cascade_rcnn/cascade_rcnn_x101_32x4d_fpn_1x_coco.py": ("resnext101_32x4d", None, 2),
    "cascade_rcnn/cascade_mask_rcnn_x101_32x4d_fpn_1x_coco.py": ("resnext101_32x4d", None, 2),
    "htc/htc_x101_32x4d_fpn_16x1_20e_coco.py": ("resnext101_32x4d", None, 1),
    "dcn/faster_rcnn_r50_fpn_dconv_c3-c5_1x_coco.py": ("resnet50", DeformConv, 2),
    "dcn/faster_rcnn_r50_fpn_mdconv_c3-c5_1x_coco.py": ("resnet50", ModulatedDeformConv, 2),
    "dcn/mask_rcnn_r50_fpn_dconv_c3-c5_1x_coco.py": ("resnet50", DeformConv, 2),
    "dcn/cascade_rcnn_r50_fpn_dconv_c3-c5_1x_coco.py": ("resnet50", DeformConv, 2),
}


def build_recipe(name: str, **options):
    cfg = load_config(CONFIGS / name)
    apply_options(cfg, options)
    fill_num_classes(cfg, [f"class{i}" for i in range(80)], source="test")
    torch.manual_seed(0)
    return cfg, MODELS.build(cfg.model)


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_recipe_builds_its_backbone_with_a_matching_checkpoint(name):
    arch, dcn_type, images_per_gpu = RECIPES[name]
    cfg, model = build_recipe(name)
    backbone = model.backbone
    assert backbone.arch == arch
    assert (backbone.frozen_stages, backbone.norm, backbone.norm_eval) == (1, "FrozenBN", True)
    assert backbone.out_channels == [256, 512, 1024, 2048][-len(backbone.out_channels):]
    assert backbone.stage_with_dcn == (C3_C5 if dcn_type else NO_DCN)
    if dcn_type is not None:
        assert type(backbone.layer2[0].conv2) is dcn_type
        assert type(backbone.layer1[0].conv2) is torch.nn.Conv2d
    checkpoint = model.init_cfg["backbone_checkpoint"]
    if arch in TORCHVISION_NAMES:
        assert torchvision_name(checkpoint) == arch
    else:  # torchvision publishes none: a file the user provides
        assert checkpoint == f"checkpoints/{arch}.pth"
    assert cfg.train_dataloader.batch_size == images_per_gpu
    assert cfg.auto_scale_lr == {"base_batch_size": 16, "enable": False}


def test_the_32x4d_recipes_load_a_torchvision_layout_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    name = "faster_rcnn/faster_rcnn_x101_32x4d_fpn_1x_coco.py"
    _, model = build_recipe(name)
    with pytest.raises(CheckpointError, match="not found: checkpoints/resnext101_32x4d.pth"):
        model.init_weights()
    torch.manual_seed(1)  # torchvision's ResNet with ResNeXt-101 32x4d's groups and widths
    state = torchvision.models.resnet101(weights=None, groups=32, width_per_group=4).state_dict()
    (tmp_path / "checkpoints").mkdir()
    torch.save(state, tmp_path / "checkpoints/resnext101_32x4d.pth")
    assert "resnext101_32x4d.pth" in model.init_weights()
    own = model.backbone.state_dict()
    assert torch.equal(own["layer3.22.conv2.weight"], state["layer3.22.conv2.weight"])
    assert torch.equal(own["layer1.0.downsample.0.weight"], state["layer1.0.downsample.0.weight"])


def test_dcn_recipe_loads_resnet50_weights_into_the_deformable_convs(tmp_path):
    torch.manual_seed(2)
    state = torchvision.models.resnet50(weights=None).state_dict()
    torch.save(state, tmp_path / "r50.pth")
    name = "dcn/faster_rcnn_r50_fpn_mdconv_c3-c5_1x_coco.py"
    _, model = build_recipe(
        name, **{"model.init_cfg.backbone_checkpoint": str(tmp_path / "r50.pth")})
    model.init_weights()
    conv2 = model.backbone.layer4[2].conv2
    assert torch.equal(conv2.weight, state["layer4.2.conv2.weight"])
    assert not conv2.conv_offset.weight.any() and not conv2.conv_offset.bias.any()


@pytest.mark.parametrize("name", ["dcn/faster_rcnn_r50_fpn_mdconv_c3-c5_1x_coco.py",
                                  "faster_rcnn/faster_rcnn_x101_32x4d_fpn_1x_coco.py"])
def test_recipe_trains_a_step_on_tiny_coco(tmp_path, name):
    """The recipe as shipped (its pipeline, frozen stages, FrozenBN), random backbone weights,
    64-pixel images: one SGD step is finite and moves the offset convs / grouped convs."""
    images = [image_entry(1, 64, 48), image_entry(2, 48, 64)]
    annotations = [box_annotation(1, 1, 1, [4, 6, 20, 18]),
                   box_annotation(2, 2, 2, [10, 8, 24, 30])]
    ann_file, img_dir = write_coco(tmp_path, images, annotations, CATEGORIES)
    cfg = load_config(CONFIGS / name)
    apply_options(cfg, {
        "model.init_cfg": None,
        "train_dataloader.dataset.ann_file": str(ann_file),
        "train_dataloader.dataset.img_dir": str(img_dir),
        "train_dataloader.dataset.pipeline.2.scale": (64, 64),
        "train_dataloader.num_workers": 0,
    })
    loader = build_dataloader(cfg.train_dataloader, training=True)
    fill_num_classes(cfg, loader.dataset.class_names, source="tiny COCO")
    torch.manual_seed(0)
    model = MODELS.build(cfg.model).train()
    watched = model.backbone.layer3[0].conv2
    watched = watched.conv_offset.weight if hasattr(watched, "conv_offset") else watched.weight
    before = watched.detach().clone()
    losses = model.loss(next(iter(loader)))
    total = sum(losses.values())
    assert torch.isfinite(total)
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.01)
    total.backward()
    optimizer.step()
    assert not torch.equal(watched, before)
