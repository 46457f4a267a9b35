"""The small-data recipes (configs/small_data/) train on the real shared datasets and stop on
their time budget with a final evaluation and checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from detbox.apis.training import train_detector
from detbox.config import ConfigDict, apply_options, load_config
from detbox.engine.checkpoint import load_checkpoint
from tests.conftest import REPO_ROOT, shared_dataset

SMALL_DATA = REPO_ROOT / "configs" / "small_data"
RECIPES = {  # recipe -> (dataset, metrics)
    "mask_rcnn_r18_fpn_pennfudan.py": ("pennfudan", ("bbox_mAP", "segm_mAP")),
    "faster_rcnn_r18_fpn_microcontroller.py": ("microcontroller", ("bbox_mAP",)),
    "retinanet_r18_fpn_microcontroller.py": ("microcontroller", ("bbox_mAP",)),
}


@pytest.mark.slow
@pytest.mark.parametrize("recipe", sorted(RECIPES))
def test_small_data_recipe_stops_on_its_budget_and_evaluates(recipe: str, tmp_path: Path):
    dataset, metrics = RECIPES[recipe]
    root = shared_dataset(dataset)
    cfg = ConfigDict(load_config(SMALL_DATA / recipe))
    data = f"{root}/"
    apply_options(cfg, {
        "train_cfg.max_time": "15s",
        "train_dataloader.dataset.ann_file": data + "annotations/instances_train.json",
        "train_dataloader.dataset.img_dir": data + "images/",
        "val_dataloader.dataset.ann_file": data + "annotations/instances_val.json",
        "val_dataloader.dataset.img_dir": data + "images/",
    })
    result = train_detector(cfg, work_dir=tmp_path, device=torch.device("cpu"), seed=0)
    for key in metrics:
        assert 0.0 <= result[key] <= 1.0, (key, result)
    checkpoint = load_checkpoint(tmp_path / "latest.pth")
    classes = json.loads((tmp_path / "label_map.json").read_text())
    assert checkpoint["state_dict"] and classes
    records = [json.loads(line) for log in tmp_path.glob("*.log.jsonl")
               for line in log.read_text().splitlines() if line.strip()]
    steps = [r["step"] for r in records if r.get("mode") == "train"]
    # the budget ended training well before the recipe's nominal epochs (1000)
    assert records and (not steps or max(steps) < 200)


@pytest.mark.parametrize("recipe", ["faster_rcnn_r18_fpn_imagenet_microcontroller.py",
                                    "mask_rcnn_r18_fpn_imagenet_pennfudan.py"])
def test_pretrained_recipes_start_from_an_imagenet_resnet18_file(recipe: str, tmp_path: Path):
    import torchvision

    from detbox.apis.build import build_detector, fill_num_classes

    torch.manual_seed(0)
    reference = torchvision.models.resnet18(weights=None)
    path = tmp_path / "resnet18.pth"
    torch.save(reference.state_dict(), path)
    cfg = ConfigDict(load_config(SMALL_DATA / recipe))
    assert cfg.model.init_cfg == {"backbone_checkpoint": "torchvision://resnet18"}
    apply_options(cfg, {"model.init_cfg.backbone_checkpoint": str(path)})
    fill_num_classes(cfg, ["a"], "test")
    model = build_detector(cfg.model, ["a"], [1])
    model.init_weights()
    assert torch.equal(model.backbone.layer3[0].conv1.weight, reference.layer3[0].conv1.weight)
    assert not any(p.requires_grad for p in model.backbone.layer1.parameters())
