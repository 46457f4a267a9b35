"""The training loop: exact resume, the non-finite guard, intervals, logs and load_from."""

from __future__ import annotations

import logging
import re

import numpy as np
import pytest
import torch
from engine_fakes import FakeDetector, make_loader, read_jsonl

from detbox.engine.checkpoint import LATEST_NAME, find_latest, load_checkpoint
from detbox.engine.training_state import check_weights_finite
from detbox.errors import CheckpointError, TrainingError

LOSS_KEYS = ("loss", "loss_cls", "loss_bbox", "acc", "lr", "grad_norm")


def _losses_by_step(records):
    return {r["step"]: {k: r[k] for k in LOSS_KEYS} for r in records if r["mode"] == "train"}


def test_resume_reproduces_an_uninterrupted_run(tmp_path, make_trainer):
    straight = make_trainer(tmp_path / "straight", max_epochs=4)
    straight.train()

    crashed = make_trainer(tmp_path / "resumed", max_epochs=4,
                           loader=make_loader(fail_at_epoch=2))
    with pytest.raises(KeyboardInterrupt):
        crashed.train()
    assert load_checkpoint(find_latest(tmp_path / "resumed"))["epoch"] == 2

    # A different seed and model init: everything must come from the checkpoint.
    resumed = make_trainer(tmp_path / "resumed", max_epochs=4, seed=99, model_seed=5)
    assert resumed.resume("auto")
    assert (resumed.epoch, resumed.iteration) == (2, 12)
    resumed.train()

    expected = _losses_by_step(read_jsonl(tmp_path / "straight"))
    got = _losses_by_step(read_jsonl(tmp_path / "resumed"))
    assert sorted(expected) == sorted(got) == list(range(1, 25))
    for step in range(1, 25):
        assert got[step] == expected[step], f"step {step} differs"
    for key, value in straight.model.state_dict().items():
        assert torch.equal(resumed.model.state_dict()[key], value), key
    val = [r for r in read_jsonl(tmp_path / "resumed") if r["mode"] == "val"]
    assert [r["epoch"] for r in val] == [1, 2, 3, 4]
    straight_val = [r for r in read_jsonl(tmp_path / "straight") if r["mode"] == "val"]
    assert val == straight_val


def test_non_finite_loss_stops_before_the_step_and_keeps_the_checkpoint(tmp_path, make_trainer):
    model = FakeDetector(nan_at_call=9)  # 6 iterations per epoch: epoch 2, iter 3
    trainer = make_trainer(tmp_path, model=model)
    with pytest.raises(TrainingError) as caught:
        trainer.train()

    message = str(caught.value)
    assert "iteration 9 (epoch 2/3, iter 3/6)" in message
    assert "loss=nan" in message and "loss_cls=nan" in message
    assert re.search(r"loss_bbox=\d", message)
    for name in model.last_files:
        assert name in message
    assert "epoch_1.pth" in message
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert sorted(p.name for p in tmp_path.glob("*.pth")) == ["epoch_1.pth", LATEST_NAME]
    checkpoint = load_checkpoint(tmp_path / LATEST_NAME)
    assert (checkpoint["epoch"], checkpoint["iteration"]) == (1, 6)
    assert all(torch.isfinite(v.float()).all() for v in checkpoint["state_dict"].values())
    log_text = next(tmp_path.glob("*.log")).read_text()
    assert "ERROR non-finite loss at iteration 9" in log_text
    assert max(r["step"] for r in read_jsonl(tmp_path) if r["mode"] == "train") == 8


def test_non_finite_gradient_is_caught_by_clipping(tmp_path, make_trainer):
    model = FakeDetector(bad_grad_at_call=2)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    trainer = make_trainer(tmp_path, model=model, grad_clip={"max_norm": 5.0, "norm_type": 2})
    with pytest.raises(TrainingError, match=r"non-finite gradient norm at iteration 2 .*"
                                            r"no checkpoint was written"):
        trainer.train()
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert not torch.equal(before["conv.weight"], model.conv.weight)  # iteration 1 did step


def test_logs_hold_environment_steps_and_evaluations(tmp_path, make_trainer):
    trainer = make_trainer(tmp_path, max_epochs=2, log_interval=4)
    metrics = trainer.train()
    assert metrics.keys() == {"bbox_mAP", "bbox_mAP_50"}

    records = read_jsonl(tmp_path)
    train = [r for r in records if r["mode"] == "train"]
    assert [(r["epoch"], r["iter"]) for r in train] == [(1, 4), (1, 6), (2, 4), (2, 6)]
    first = train[0]
    assert list(first)[:8] == ["mode", "epoch", "iter", "step", "lr", "eta_seconds", "time",
                               "data_time"]
    assert {"loss", "loss_cls", "loss_bbox", "acc", "grad_norm"} <= first.keys()
    assert first["loss"] == pytest.approx(first["loss_cls"] + first["loss_bbox"])
    assert first["eta_seconds"] >= 0 and first["time"] >= first["data_time"] >= 0
    val = [r for r in records if r["mode"] == "val"]
    assert [r["epoch"] for r in val] == [1, 2]
    assert val[-1]["bbox_mAP"] == metrics["bbox_mAP"]

    text = next(tmp_path.glob("*.log")).read_text().splitlines()
    head = "\n".join(text[:5])
    for expected in ("seed 7", "device cpu", "torch 2.", "FakeDetector:", "parameters"):
        assert expected in head
    pattern = (r"epoch \[1/2\] iter \[4/6\] lr \d\.\de-\d\d eta \d+:\d\d:\d\d time \d+\.\d\d "
               r"data \d+\.\d\d loss \d+\.\d{4} loss_cls \d+\.\d{4} loss_bbox \d+\.\d{4}")
    assert any(re.search(pattern, line) for line in text)
    assert any("val epoch [2] bbox_mAP" in line for line in text)


def test_intervals_rotation_and_sampler_epochs(tmp_path, make_trainer):
    loader = make_loader()
    calls = []
    trainer = make_trainer(tmp_path, loader=loader, max_epochs=5, val_interval=2,
                           checkpoint_interval=2, max_keep_checkpoints=2,
                           evaluate_fn=lambda model: calls.append(1) or {"bbox_mAP": 0.5})
    trainer.train()
    assert loader.batch_sampler.epochs_seen == [0, 1, 2, 3, 4]
    val_epochs = [r["epoch"] for r in read_jsonl(tmp_path) if r["mode"] == "val"]
    assert val_epochs == [2, 4, 5] and len(calls) == 3
    assert sorted(p.name for p in tmp_path.glob("*.pth")) == [
        "epoch_4.pth", "epoch_5.pth", LATEST_NAME]
    assert load_checkpoint(tmp_path / LATEST_NAME)["meta"]["class_names"] == ["a", "b", "c"]


def test_resume_a_finished_run_only_evaluates(tmp_path, make_trainer):
    make_trainer(tmp_path, max_epochs=1).train()
    again = make_trainer(tmp_path, max_epochs=1)
    assert again.resume(tmp_path / "epoch_1.pth")
    assert again.train().keys() == {"bbox_mAP", "bbox_mAP_50"}
    assert [r["mode"] for r in read_jsonl(tmp_path)].count("val") == 2


def test_resume_auto_without_checkpoint_starts_fresh(tmp_path, make_trainer):
    trainer = make_trainer(tmp_path)
    assert trainer.resume("auto") is False
    assert (trainer.epoch, trainer.iteration) == (0, 0)
    trainer.logger.close()


def test_an_unused_trainer_leaves_the_logger_and_the_work_dir_alone(tmp_path, make_trainer):
    detbox_logger = logging.getLogger("detbox")
    before = (detbox_logger.propagate, detbox_logger.level, list(detbox_logger.handlers))
    make_trainer(tmp_path / "run")
    assert (detbox_logger.propagate, detbox_logger.level, detbox_logger.handlers) == (
        before[0], before[1], before[2])
    assert not list((tmp_path / "run").glob("*.log"))

    trainer = make_trainer(tmp_path / "run", max_epochs=1)
    trainer.train()
    assert detbox_logger.propagate == before[0] and detbox_logger.handlers == before[2]
    text = next((tmp_path / "run").glob("*.log")).read_text()
    assert "seed 7" in text  # the run's description is written when the log opens


def test_resume_refuses_weights_only_and_foreign_checkpoints(tmp_path, make_trainer):
    torch.save(FakeDetector().state_dict(), tmp_path / "weights.pth")
    torch.save({"state_dict": FakeDetector(num_classes=7).state_dict(), "optimizer": {},
                "epoch": 1, "iteration": 6}, tmp_path / "other.pth")
    trainer = make_trainer(tmp_path / "run")
    with pytest.raises(CheckpointError, match="not a training checkpoint.*load_from"):
        trainer.resume(tmp_path / "weights.pth")
    with pytest.raises(CheckpointError, match="does not fit the model of this run's config: "
                       r"2 tensor\(s\) differ in shape \(cls.weight: checkpoint \(7, 8\) vs "
                       r"model \(3, 8\).*another number of classes.*--load-from"):
        trainer.resume(tmp_path / "other.pth")
    trainer.logger.close()


def test_load_from_keeps_mismatched_heads_fresh(tmp_path, make_trainer):
    torch.manual_seed(3)
    pretrained = FakeDetector(num_classes=80)
    torch.save({"model": pretrained.state_dict()}, tmp_path / "coco.pth")
    trainer = make_trainer(tmp_path / "run", max_epochs=1, progress_bar=True)
    fresh_cls = trainer.model.cls.weight.detach().clone()
    report = trainer.load_from(tmp_path / "coco.pth")
    assert torch.equal(trainer.model.conv.weight, pretrained.conv.weight)
    assert torch.equal(trainer.model.cls.weight, fresh_cls)
    assert ("cls.weight", (80, 8), (3, 8)) in report.mismatched
    trainer.train()
    log_text = next((tmp_path / "run").glob("*.log")).read_text()
    assert "cls.weight: checkpoint (80, 8) vs model (3, 8)" in log_text
    torch.save({"state_dict": {"x.weight": torch.zeros(1)}}, tmp_path / "unrelated.pth")
    with pytest.raises(CheckpointError, match="no weight"):
        make_trainer(tmp_path / "other").load_from(tmp_path / "unrelated.pth")


def test_structured_metrics_reach_the_json_log(tmp_path, make_trainer):
    def evaluate(model):
        return {"bbox_mAP": np.float64(0.25), "bbox_mAP_50": torch.tensor(0.5), "AR": float("nan"),
                "bbox_stats": [0.25, 0.5], "bbox_per_class": {"a": {"AP": 0.1, "num_gt": 3}}}

    metrics = make_trainer(tmp_path, max_epochs=1, evaluate_fn=evaluate).train()
    assert metrics["bbox_mAP"] == 0.25 and isinstance(metrics["bbox_mAP_50"], float)
    val = [r for r in read_jsonl(tmp_path) if r["mode"] == "val"]
    assert val == [{"mode": "val", "epoch": 1, "bbox_mAP": 0.25, "bbox_mAP_50": 0.5, "AR": None,
                    "bbox_stats": [0.25, 0.5], "bbox_per_class": {"a": {"AP": 0.1, "num_gt": 3}}}]
    text = next(tmp_path.glob("*.log")).read_text()
    assert "val epoch [1] bbox_mAP 0.2500 bbox_mAP_50 0.5000 AR nan\n" in text


def test_loader_set_epoch_is_preferred(tmp_path, make_trainer):
    loader = make_loader()
    loader.set_epoch = lambda epoch: loader.batch_sampler.set_epoch(epoch + 100)
    make_trainer(tmp_path, loader=loader, max_epochs=2, evaluate_fn=None).train()
    assert loader.batch_sampler.epochs_seen == [100, 101]


def test_non_finite_weights_are_never_checkpointed():
    model = FakeDetector()
    with torch.no_grad():
        model.reg.bias[0] = float("inf")
    with pytest.raises(TrainingError, match=r"parameter 'reg\.bias' holds NaN/inf after epoch 2"):
        check_weights_finite(model, 2, "work/epoch_1.pth")
