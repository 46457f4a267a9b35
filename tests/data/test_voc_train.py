"""End to end: ``detbox train`` on the real Penn-Fudan VOC folder, evaluated with VOC mAP."""

from __future__ import annotations

import json

from detbox.cli.main import main
from tests.conftest import REPO_ROOT, shared_dataset

DEMO = str(REPO_ROOT / "configs/demo/retinanet_r18_fpn_synthetic.py")


def test_train_one_epoch_on_voc_data_with_voc_metric(tmp_path):
    root = shared_dataset("pennfudan_voc")
    ids = (root / "ImageSets/Main/val.txt").read_text().split()
    (tmp_path / "train.txt").write_text("\n".join(ids[:8]) + "\n")
    (tmp_path / "val.txt").write_text("\n".join(ids[8:10]) + "\n")

    def voc(split: str, pipeline: str) -> str:
        return (f"dict(type='VOCDataset', data_root='{root}', split_file='{tmp_path / split}', "
                f"pipeline={pipeline})")

    work = tmp_path / "work"
    options = ["train_dataloader.batch_size=4", "train_dataloader.num_workers=0",
               "val_dataloader.batch_size=2", "val_dataloader.num_workers=0",
               "train_cfg.max_epochs=1", "log.interval=1", "lr_schedule.warmup_iters=1",
               "evaluation.metric=['voc']",
               f"train_dataloader.dataset={voc('train.txt', 'train_pipeline')}",
               f"val_dataloader.dataset={voc('val.txt', 'test_pipeline')}"]
    assert main(["train", DEMO, "--work-dir", str(work), "--cfg-options", *options]) == 0
    (log,) = work.glob("*.log.jsonl")
    records = [json.loads(line) for line in log.read_text().splitlines()]
    train = [r for r in records if r.get("mode") == "train"]
    (val,) = [r for r in records if r.get("mode") == "val"]
    assert [r["iter"] for r in train][-1] == 2
    assert 0.0 <= val["mAP"] <= 1.0 and set(val["AP_per_class"]) == {"person"}
    config = json.loads((work / "config.json").read_text())
    assert config["model"]["bbox_head"]["num_classes"] == 1
