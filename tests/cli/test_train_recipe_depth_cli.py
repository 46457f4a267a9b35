"""``detbox train`` on the shipped RetinaNet R50 recipe with another depth, end to end.

The recipe starts from ImageNet weights (``torchvision://resnet50``): changing the depth
therefore names the matching weights too, and the neck's input channels follow the backbone
without a hand edit. The weights come from a temporary hub cache; nothing is downloaded.
"""

from __future__ import annotations

import json

import pytest
import torch
import torchvision

from detbox.cli.main import main
from detbox.engine import load_checkpoint
from detbox.models.pretrained import cache_path
from tests.conftest import REPO_ROOT
from tests.data.coco_factory import CATEGORIES, box_annotation, image_entry, write_coco
from tests.models.test_pretrained import save_random_resnet18

RECIPE = REPO_ROOT / "configs/retinanet/retinanet_r50_fpn_1x_coco.py"


@pytest.fixture
def tiny_coco(tmp_path):
    images = [image_entry(1, 64, 48), image_entry(2, 48, 64)]
    annotations = [box_annotation(1, 1, 1, [4, 6, 20, 18]),
                   box_annotation(2, 2, 2, [10, 8, 24, 30])]
    return write_coco(tmp_path / "coco", images, annotations, CATEGORIES)


def _train(tmp_path, ann_file, img_dir, *options):
    return main([
        "train", str(RECIPE), "--work-dir", str(tmp_path / "work"), "--device", "cpu",
        "--cfg-options", "model.backbone.depth=18", "model.bbox_head.num_classes=None",
        *(f"{split}_dataloader.dataset.{key}={value}" for split in ("train", "val")
          for key, value in (("ann_file", ann_file), ("img_dir", img_dir))),
        "train_dataloader.num_workers=0", "val_dataloader.num_workers=0",
        "train_dataloader.dataset.pipeline.2.scale=(64,64)",
        "val_dataloader.dataset.pipeline.1.scale=(64,64)",
        "train_cfg.max_epochs=1", *options,
    ])


def test_recipe_trains_at_depth_18_from_its_imagenet_weights(tmp_path, tiny_coco, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.setattr(torch.hub, "download_url_to_file",
                        lambda *a, **k: pytest.fail(f"unexpected download {a}"))
    url = torchvision.models.ResNet18_Weights.IMAGENET1K_V1.url
    imagenet = save_random_resnet18(cache_path(url))
    ann_file, img_dir = tiny_coco
    code = _train(tmp_path, ann_file, img_dir,
                  "model.init_cfg.backbone_checkpoint=torchvision://resnet18")
    assert code == 0
    config = json.loads((tmp_path / "work" / "config.json").read_text())
    assert config["model"]["backbone"]["depth"] == 18
    state = load_checkpoint(tmp_path / "work" / "latest.pth")["state_dict"]
    assert state["neck.lateral_convs.0.weight"].shape[1] == 128  # ResNet-18's C3 channels
    # the frozen stem (frozen_stages=1) still holds the ImageNet file's weights after training
    assert torch.equal(state["backbone.conv1.weight"], imagenet["conv1.weight"])


def test_depth_alone_names_the_matching_weights(tmp_path, tiny_coco, monkeypatch, capsys):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    ann_file, img_dir = tiny_coco
    assert _train(tmp_path, ann_file, img_dir) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "torchvision://resnet18" in err[0], err
