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

RECIPES = {
    "pennfudan": ("mask_rcnn_r18_fpn_pennfudan.py", ("bbox_mAP", "segm_mAP")),
    "microcontroller": ("faster_rcnn_r18_fpn_microcontroller.py", ("bbox_mAP",)),
}


@pytest.mark.slow
@pytest.mark.parametrize("dataset", sorted(RECIPES))
def test_small_data_recipe_stops_on_its_budget_and_evaluates(dataset: str, tmp_path: Path):
    root = shared_dataset(dataset)
    recipe, metrics = RECIPES[dataset]
    cfg = ConfigDict(load_config(REPO_ROOT / "configs" / "small_data" / recipe))
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
