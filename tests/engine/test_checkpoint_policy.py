"""Best checkpoints, early stopping, automatic LR scaling, SyncBN preparation, TensorBoard."""

from __future__ import annotations

import pytest
import torch
from engine_fakes import FakeDetector, make_loader, read_jsonl
from torch import nn

from detbox.engine.best import MetricTracker
from detbox.engine.checkpoint import LATEST_NAME, load_checkpoint
from detbox.engine.optim import scale_lr
from detbox.engine.sync_bn import prepare_batch_norms, revert_sync_batchnorm
from detbox.errors import ConfigError


def scripted(values: list[float], key: str = "bbox_mAP"):
    """An evaluation that reports ``values`` one after the other."""
    queue = list(values)
    return lambda model: {key: queue.pop(0), "bbox_mAP_50": 0.5}


def _pth_names(work_dir) -> list[str]:
    return sorted(p.name for p in work_dir.glob("*.pth"))


def test_save_best_keeps_the_best_checkpoints(tmp_path, make_trainer):
    trainer = make_trainer(tmp_path, max_epochs=5, evaluate_fn=scripted([0.1, 0.3, 0.2, 0.5, 0.4]),
                           checkpoint_interval=0, max_keep_checkpoints=1, save_best="bbox_mAP",
                           best_rule="greater", max_keep_best=2)
    trainer.train()
    # The two best are epochs 4 (0.5) and 5 (0.4); epoch 5's is a hard link to epoch_5.pth.
    assert _pth_names(tmp_path) == ["best_bbox_mAP_epoch_4.pth", "best_bbox_mAP_epoch_5.pth",
                                    "epoch_5.pth", LATEST_NAME]
    best = load_checkpoint(tmp_path / "best_bbox_mAP_epoch_4.pth")
    assert (best["epoch"], best["best"]["best_score"], best["best"]["best_epoch"]) == (4, 0.5, 4)
    assert [k["epoch"] for k in load_checkpoint(tmp_path / LATEST_NAME)["best"]["kept"]] == [4, 5]
    log = next(tmp_path.glob("*.log")).read_text()
    assert "best_bbox_mAP_epoch_2.pth" in log  # written at epoch 2, deleted when it fell out


def test_best_of_a_loss_is_the_lowest_and_survives_rotation(tmp_path, make_trainer):
    make_trainer(tmp_path, max_epochs=3, evaluate_fn=scripted([0.9, 0.4, 0.6], "val_loss"),
                 max_keep_checkpoints=1, save_best="val_loss").train()
    assert _pth_names(tmp_path) == ["best_val_loss_epoch_2.pth", "epoch_3.pth", LATEST_NAME]
    assert load_checkpoint(tmp_path / "best_val_loss_epoch_2.pth")["epoch"] == 2


def test_patience_stops_training_and_a_resume_remembers_it(tmp_path, make_trainer):
    trainer = make_trainer(tmp_path, max_epochs=10, evaluate_fn=scripted([0.5, 0.6, 0.6, 0.4]),
                           checkpoint_interval=0, save_best="bbox_mAP", patience=2)
    trainer.train()
    assert trainer.epoch == 4 and trainer.stopped_early
    assert _pth_names(tmp_path) == ["best_bbox_mAP_epoch_2.pth", "epoch_4.pth", LATEST_NAME]
    log = next(tmp_path.glob("*.log")).read_text()
    assert "early stopping: bbox_mAP has not improved for 2 evaluation(s) (patience 2); " \
           "best 0.6000 at epoch 2" in log

    again = make_trainer(tmp_path, max_epochs=10, evaluate_fn=scripted([0.55]),
                         checkpoint_interval=0, save_best="bbox_mAP", patience=2)
    assert again.resume("auto") and again.stopped_early
    again.train()
    assert again.epoch == 4  # nothing trained; only the final evaluation ran


def test_save_best_and_patience_misconfigurations(tmp_path, make_trainer):
    with pytest.raises(ConfigError, match="patience needs a metric to watch"):
        make_trainer(tmp_path, patience=3)
    with pytest.raises(ConfigError, match="needs an evaluation"):
        make_trainer(tmp_path, save_best="bbox_mAP", evaluate_fn=None)
    trainer = make_trainer(tmp_path, max_epochs=1, save_best="bbox_mAp")
    with pytest.raises(ConfigError, match="'bbox_mAp' is not a metric.*Did you mean 'bbox_mAP'"):
        trainer.train()


def test_tracker_ignores_non_finite_values():
    tracker = MetricTracker("val_loss", max_keep=1, patience=2)
    assert tracker.rule == "less"
    assert tracker.observe({"val_loss": float("nan")}, 1) is False
    assert tracker.observe({"val_loss": 2.0}, 2) is True and tracker.best_epoch == 2
    assert tracker.keep(tracker.file_name(2), 2.0, 2) == []
    assert tracker.observe({"val_loss": 3.0}, 3) is False and not tracker.should_stop
    assert tracker.observe({"val_loss": 2.0}, 4) is False and tracker.should_stop
    assert tracker.observe({"val_loss": 1.0}, 5) is True and not tracker.should_stop
    assert tracker.keep(tracker.file_name(5), 1.0, 5) == ["best_val_loss_epoch_2.pth"]


def test_auto_scale_lr_follows_the_total_batch():
    cfg = {"type": "SGD", "lr": 0.02}
    scaled, message = scale_lr(cfg, {"base_batch_size": 16, "enable": True},
                               batch_per_process=2, world_size=4, accumulate_steps=1)
    assert scaled["lr"] == pytest.approx(0.01) and cfg["lr"] == 0.02
    assert "lr 0.02 -> 0.01" in message
    assert "total batch 8 = 2 per process x 4 process(es) x 1 accumulation step(s)" in message
    scaled, _ = scale_lr(cfg, {"base_batch_size": 16, "enable": True}, batch_per_process=4,
                         world_size=2, accumulate_steps=4)
    assert scaled["lr"] == pytest.approx(0.04)  # total batch 32 = twice the base
    kept, message = scale_lr(cfg, {"base_batch_size": 16}, batch_per_process=2, world_size=1)
    assert kept["lr"] == 0.02 and "auto_scale_lr off" in message and "enable it" in message
    with pytest.raises(ConfigError, match="Did you mean 'base_batch_size'"):
        scale_lr(cfg, {"base_batch": 16}, batch_per_process=2, world_size=1)


def test_trainer_applies_and_logs_the_scaled_lr(tmp_path, make_trainer):
    trainer = make_trainer(tmp_path, loader=make_loader(batch_size=2), accumulate_steps=2,
                           auto_scale_lr={"base_batch_size": 16, "enable": True},
                           lr_schedule_cfg={"policy": "constant", "warmup": None}, max_epochs=1)
    trainer.train()
    assert trainer.state.scheduler.base_lrs[0] == pytest.approx(0.05 * 4 / 16)
    assert "total batch 4 = 2 per process x 1 process(es) x 2 accumulation step(s)" in \
        next(tmp_path.glob("*.log")).read_text()


def test_sync_bn_in_a_single_process_and_reverting_it():
    model = nn.Sequential(nn.Conv2d(3, 4, 1), nn.SyncBatchNorm(4))
    model[1].weight.requires_grad_(False)
    with torch.no_grad():
        model[1].running_mean.fill_(0.5)
    same, note = prepare_batch_norms(model, torch.device("cpu"), sync_bn=True)
    assert same is model and note == "sync_bn=True has no effect in a single process"
    plain = revert_sync_batchnorm(model)
    assert type(plain[1]) is nn.BatchNorm2d and not plain[1].weight.requires_grad
    assert torch.all(plain[1].running_mean == 0.5)
    assert plain(torch.rand(2, 3, 4, 4)).shape == (2, 4, 4, 4)


def test_tensorboard_gets_scalars_and_images(tmp_path, make_trainer):
    pytest.importorskip("tensorboard", reason="the tensorboard package is an optional extra")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    picture = torch.zeros(8, 8, 3, dtype=torch.uint8).numpy()
    make_trainer(tmp_path, max_epochs=1, tensorboard=True,
                 visualize_fn=lambda model: [("first", picture)]).train()
    (run,) = (tmp_path / "tensorboard").iterdir()
    events = EventAccumulator(str(run)).Reload()
    tags = events.Tags()
    assert {"train/loss", "train/loss_cls", "train/lr", "val/bbox_mAP"} <= set(tags["scalars"])
    assert tags["images"] == ["val_images/first"]
    assert [e.step for e in events.Scalars("val/bbox_mAP")] == [6]
    assert len(read_jsonl(tmp_path)) == 7  # the JSON-lines log is still written


def test_missing_tensorboard_is_a_clear_error(tmp_path, make_trainer, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "tensorboard" else real(name, *a))
    with pytest.raises(ConfigError, match=r"pip install 'detbox\[tensorboard\]'"):
        make_trainer(tmp_path, model=FakeDetector(), tensorboard=True)
