"""End to end: ``detbox train`` on the real VOC folders, and on their conversion to COCO."""

from __future__ import annotations

import json

import pytest

from detbox.cli.main import main
from tests.conftest import REPO_ROOT, shared_dataset

DEMO = str(REPO_ROOT / "configs/demo/retinanet_r18_fpn_synthetic.py")
CLASSES = {
    "pennfudan_voc": ["person"],
    "microcontroller_voc": ["Arduino_Nano", "ESP8266", "Heltec_ESP32_Lora", "Raspberry_Pi_3"],
}


def split(tmp_path, root) -> None:
    ids = (root / "ImageSets/Main/val.txt").read_text().split()
    (tmp_path / "train.txt").write_text("\n".join(ids[:8]) + "\n")
    (tmp_path / "val.txt").write_text("\n".join(ids[8:12]) + "\n")


def train(tmp_path, train_dataset: str, val_dataset: str, metric: str) -> dict:
    work = tmp_path / "work"
    options = ["train_dataloader.batch_size=4", "train_dataloader.num_workers=0",
               "val_dataloader.batch_size=2", "val_dataloader.num_workers=0",
               "train_cfg.max_epochs=1", "log.interval=1", "lr_schedule.warmup_iters=1",
               f"evaluation.metric=['{metric}']",
               f"train_dataloader.dataset={train_dataset}", f"val_dataloader.dataset={val_dataset}"]
    assert main(["train", DEMO, "--work-dir", str(work), "--cfg-options", *options]) == 0
    (log,) = work.glob("*.log.jsonl")
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert [r["iter"] for r in records if r.get("mode") == "train"][-1] == 2
    (val,) = [r for r in records if r.get("mode") == "val"]
    return val


@pytest.mark.parametrize("name", sorted(CLASSES))
def test_train_one_epoch_on_voc_data_with_voc_metric(tmp_path, name):
    root = shared_dataset(name)
    split(tmp_path, root)

    def voc(split_file: str, pipeline: str) -> str:
        return (f"dict(type='VOCDataset', data_root='{root}', class_names={CLASSES[name]}, "
                f"split_file='{tmp_path / split_file}', pipeline={pipeline})")

    val = train(tmp_path, voc("train.txt", "train_pipeline"), voc("val.txt", "test_pipeline"),
                "voc")
    assert 0.0 <= val["mAP"] <= 1.0 and set(val["AP_per_class"]) == set(CLASSES[name])


@pytest.mark.parametrize("name", sorted(CLASSES))
def test_train_on_voc_converted_to_coco(tmp_path, name):
    root = shared_dataset(name)
    split(tmp_path, root)
    for part in ("train", "val"):
        assert main(["convert", "voc2coco", str(root), str(tmp_path / f"{part}.json"),
                     "--split-file", str(tmp_path / f"{part}.txt"),
                     "--class-names", *CLASSES[name]]) == 0

    def coco(part: str, pipeline: str) -> str:
        return (f"dict(type='CocoDataset', ann_file='{tmp_path / part}.json', "
                f"img_dir='{root / 'JPEGImages'}', pipeline={pipeline})")

    val = train(tmp_path, coco("train", "train_pipeline"), coco("val", "test_pipeline"), "bbox")
    assert 0.0 <= val["bbox_mAP"] <= 1.0
