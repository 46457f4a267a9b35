"""Every config mistake a user makes on ``detbox train`` is one line naming the key: exit code 2,
no traceback, nothing trained.

Each row is a ``--cfg-options`` override of the demo config and words the error must contain
(the key's path and what is expected or the closest valid value).
"""

from __future__ import annotations

import pytest

from detbox.cli.main import main
from tests.conftest import REPO_ROOT

DEMO = str(REPO_ROOT / "configs/demo/retinanet_r18_fpn_synthetic.py")

MISTAKES = [
    # wrong type
    ("train_cfg.max_epochs=abc", ["train_cfg.max_epochs", "'abc'"]),
    ("optimizer.lr=abc", ["optimizer.lr", "expected float"]),
    ("lr_schedule.gamma=abc", ["lr_schedule.gamma", "expected float"]),
    ("checkpoint.max_keep=x", ["checkpoint.max_keep", "'x'"]),
    ("train_dataloader.batch_size=two", ["batch_size", "expected int"]),
    ("model.bbox_head.nms_pre=abc", ["model.bbox_head.nms_pre", "expected int"]),
    ("model.backbone.norm_eval=yes", ["model.backbone.norm_eval", "expected bool"]),
    # wrong range
    ("optimizer.lr=-0.1", ["optimizer.lr", ">= 0"]),
    ("lr_schedule.warmup_iters=-5", ["lr_schedule.warmup_iters", ">= 0"]),
    ("log.interval=0", ["log.interval", ">= 1"]),
    ("model.neck.out_channels=-1", ["model.neck.out_channels", "> 0"]),
    ("train_dataloader.dataset.pipeline.3.prob=1.5", ["prob", "<= 1"]),
    # unknown choice or key
    ("lr_schedule.policy=stepp", ["policy", "'step'"]),
    ("optimizer.type=SGDD", ["SGDD", "'SGD'"]),
    ("model.backbone.depth=51", ["model.backbone.depth", "51"]),
    ("model.neck.extra_convs=inptu", ["model.neck.extra_convs", "'input'"]),
    ("model.bbox_head.nms_iou=0.4", ["nms_iou", "nms_iou_thr"]),
    ("train_cfg.max_epoch=3", ["max_epoch", "max_epochs"]),
    # classes
    ("num_classes=5", ["num_classes = 5", "3 categories"]),
    ("model.bbox_head.num_classes=7", ["model.bbox_head.num_classes = 7", "3 categories"]),
]


@pytest.mark.parametrize("option, words", MISTAKES, ids=[m[0] for m in MISTAKES])
def test_a_config_mistake_is_one_line_naming_the_key(tmp_path, capsys, option, words):
    work_dir = tmp_path / "work"
    code = main(["train", DEMO, "--work-dir", str(work_dir), "--device", "cpu",
                 "--cfg-options", "train_dataloader.num_workers=0", option])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and err[0].startswith("detbox train: error: "), err
    assert "Traceback" not in err[0]
    for word in words:
        assert word in err[0], (word, err[0])
    assert not list(work_dir.glob("*.pth")), "nothing is trained after a config mistake"


def test_a_missing_annotation_file_names_the_file(tmp_path, capsys):
    missing = tmp_path / "nowhere" / "instances_train.json"
    code = main(["train", DEMO, "--work-dir", str(tmp_path / "work"), "--cfg-options",
                 f"train_dataloader.dataset=dict(type='CocoDataset', ann_file='{missing}', "
                 "img_dir='images/', pipeline=train_pipeline)"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert str(missing) in err[0] and "Traceback" not in err[0]
