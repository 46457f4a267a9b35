"""Iteration-based training (``train_cfg.by_epoch=False``): the loop crosses epochs, intervals
and milestones count iterations, and a run stopped mid-epoch resumes exactly."""

from __future__ import annotations

import os
import signal

import pytest
import torch
from conftest import fakes
from engine_fakes import FakeDataset, FakeDetector, collate, make_loader, read_jsonl

from detbox.data.build import DetDataLoader, seed_worker
from detbox.engine.checkpoint import LATEST_NAME, load_checkpoint
from detbox.engine.interrupt import TrainingInterrupted
from detbox.engine.lr_schedule import build_lr_schedule
from detbox.engine.settings import TrainSettings
from detbox.errors import ConfigError

ITERS = {"by_epoch": False, "max_iters": 14}
LOG_KEYS = ("epoch", "iter", "loss", "loss_cls", "loss_bbox", "acc", "lr", "grad_norm")


def _train_records(work_dir) -> dict[int, dict]:
    """step -> logged values; a step logged twice (before a crash and after the resume) must
    have been logged with the same values."""
    found: dict[int, dict] = {}
    for record in read_jsonl(work_dir):
        if record["mode"] != "train":
            continue
        values = {key: record[key] for key in LOG_KEYS}
        assert found.setdefault(record["step"], values) == values, record["step"]
    return found


def _worker_loader(num_workers: int):
    """The fake data through detbox's own loader (which seeds its workers per epoch)."""
    if num_workers == 0:
        return make_loader()
    sampler = fakes.EpochBatchSampler(fakes.NUM_IMAGES, 2)
    return DetDataLoader(FakeDataset(), seed=3, batch_sampler=sampler, collate_fn=collate,
                         num_workers=num_workers, worker_init_fn=seed_worker)


class CrashAtCall(FakeDetector):
    """Dies (like a killed process) during its ``at``-th loss call, or sends a signal."""

    def __init__(self, at: int, signum: int | None = None) -> None:
        super().__init__()
        self.at, self.signum = at, signum

    def loss(self, batch):
        losses = super().loss(batch)
        if self.calls == self.at:
            if self.signum is None:
                raise RuntimeError("killed")
            os.kill(os.getpid(), self.signum)
        return losses


def test_iterations_cross_epochs_and_intervals_count_iterations(tmp_path, make_trainer):
    loader = make_loader()
    trainer = make_trainer(tmp_path, loader=loader, **ITERS, val_interval=4,
                           checkpoint_interval=5, max_keep_checkpoints=2)
    metrics = trainer.train()
    assert (trainer.iteration, trainer.epoch, trainer.state.epoch_batches) == (14, 2, 2)
    assert loader.batch_sampler.epochs_seen == [0, 1, 2]  # 6 iterations per epoch
    records = read_jsonl(tmp_path)
    steps = [(r["step"], r["epoch"], r["iter"]) for r in records if r["mode"] == "train"]
    assert steps == [(s, (s - 1) // 6 + 1, (s - 1) % 6 + 1) for s in range(1, 15)]
    val = [r for r in records if r["mode"] == "val"]
    assert [(r["step"], r["epoch"]) for r in val] == [(4, 1), (8, 2), (12, 2), (14, 3)]
    assert val[-1]["bbox_mAP"] == metrics["bbox_mAP"]
    assert sorted(p.name for p in tmp_path.glob("*.pth")) == [
        "iter_10.pth", "iter_14.pth", LATEST_NAME]
    latest = load_checkpoint(tmp_path / LATEST_NAME)
    assert (latest["iteration"], latest["epoch"], latest["epoch_batches"]) == (14, 2, 2)
    text = next(tmp_path.glob("*.log")).read_text()
    assert "training 14 iterations, 6 iterations per epoch (6 batches)" in text
    assert "iter [9/14] epoch [2/" not in text and "iter [9/14] epoch [2] lr" in text
    assert "val iter [8] epoch [2] bbox_mAP" in text


@pytest.mark.parametrize("num_workers", [0, 1])
@pytest.mark.parametrize("stop", ["crash", "sigterm"])
def test_a_run_stopped_mid_epoch_resumes_with_the_same_losses(tmp_path, make_trainer,
                                                              num_workers, stop):
    straight = make_trainer(tmp_path / "straight", loader=_worker_loader(num_workers),
                            **ITERS, val_interval=4, checkpoint_interval=5,
                            max_keep_checkpoints=None)
    straight.train()

    torch.manual_seed(0)
    signum = signal.SIGTERM if stop == "sigterm" else None
    stopped = make_trainer(tmp_path / "cut", model=CrashAtCall(9, signum),
                           loader=_worker_loader(num_workers), **ITERS, val_interval=4,
                           checkpoint_interval=5, max_keep_checkpoints=None)
    with pytest.raises(TrainingInterrupted if signum else RuntimeError):
        stopped.train()
    latest = load_checkpoint(tmp_path / "cut" / LATEST_NAME)
    # The crash leaves the interval checkpoint of iteration 5 (batch 5 of epoch 1); the
    # signal one of iteration 9 (batch 3 of epoch 2).
    expected = (5, 0, 5) if signum is None else (9, 1, 3)
    assert (latest["iteration"], latest["epoch"], latest["epoch_batches"]) == expected

    resumed = make_trainer(tmp_path / "cut", loader=_worker_loader(num_workers), seed=99,
                           model_seed=5, **ITERS, val_interval=4,
                           checkpoint_interval=5, max_keep_checkpoints=None)
    assert resumed.resume("auto")
    resumed.train()
    want, got = _train_records(tmp_path / "straight"), _train_records(tmp_path / "cut")
    assert sorted(got) == sorted(want) == list(range(1, 15))
    for step in range(1, 15):
        for key in LOG_KEYS:
            assert got[step][key] == pytest.approx(want[step][key], rel=0, abs=1e-6), (step, key)
    for key, value in straight.model.state_dict().items():
        assert torch.allclose(resumed.model.state_dict()[key].float(), value.float(),
                              rtol=0, atol=1e-6), key
    val = [r["step"] for r in read_jsonl(tmp_path / "cut") if r["mode"] == "val"]
    assert sorted(set(val)) == [4, 8, 12, 14]


def test_step_milestones_in_iterations_move_the_lr_at_that_iteration(tmp_path, make_trainer):
    trainer = make_trainer(tmp_path, lr_schedule_cfg={"policy": "step", "milestones": [5, 9],
                                                      "warmup": None},
                           evaluate_fn=None, **ITERS, val_interval=0)
    trainer.train()
    lrs = {r["step"]: r["lr"] for r in read_jsonl(tmp_path) if r["mode"] == "train"}
    # step s runs 0-based iteration s - 1: the drops come at iterations 5 and 9
    assert [lrs[s] for s in (5, 6, 9, 10, 14)] == pytest.approx(
        [0.05, 0.005, 0.005, 0.0005, 0.0005])


def test_lr_schedule_in_iterations_steps_and_cosine():
    optimizer = torch.optim.SGD(torch.nn.Linear(2, 2).parameters(), lr=0.02)
    schedule = build_lr_schedule(
        optimizer, {"policy": "step", "milestones": [60000, 80000], "warmup": "linear",
                    "warmup_iters": 1000, "warmup_ratio": 0.001},
        iters_per_epoch=7330, max_iters=90000)
    assert schedule.max_iters == 90000
    assert schedule.lr_at(0) == pytest.approx(0.02 * 0.001)
    assert schedule.lr_at(500) == pytest.approx(0.02 * (0.001 + 0.999 * 0.5))
    assert schedule.lr_at(1000) == schedule.lr_at(59999) == pytest.approx(0.02)
    assert schedule.lr_at(60000) == schedule.lr_at(79999) == pytest.approx(0.002)
    assert schedule.lr_at(80000) == schedule.lr_at(89999) == pytest.approx(0.0002)
    cosine = build_lr_schedule(optimizer, {"policy": "cosine", "warmup": None},
                               iters_per_epoch=3, max_iters=11)
    assert cosine.lr_at(0) == pytest.approx(0.02) and cosine.lr_at(10) == pytest.approx(0.0)
    assert cosine.lr_at(5) == pytest.approx(0.01)
    with pytest.raises(ConfigError, match="one of them"):
        build_lr_schedule(optimizer, {}, iters_per_epoch=3, max_epochs=2, max_iters=5)


def test_best_checkpoints_and_early_stopping_count_iterations(tmp_path, make_trainer):
    scores = iter([0.5, 0.7, 0.6, 0.6])
    trainer = make_trainer(tmp_path, evaluate_fn=lambda model: {"bbox_mAP": next(scores)},
                           save_best="bbox_mAP", checkpoint_interval=0,
                           by_epoch=False, max_iters=20, val_interval=3, patience=2)
    trainer.train()
    assert trainer.iteration == 12 and trainer.stopped_early
    assert sorted(p.name for p in tmp_path.glob("*.pth")) == [
        "best_bbox_mAP_iter_6.pth", "iter_12.pth", LATEST_NAME]
    assert "best 0.7000 at iteration 6" in next(tmp_path.glob("*.log")).read_text()


@pytest.mark.parametrize(("section", "message"), [
    ({"by_epoch": False, "max_iter": 10}, r"unknown key 'max_iter'\. Did you mean 'max_iters'"),
    ({"by_epoch": False}, r"by_epoch=False needs train_cfg\.max_iters"),
    ({"by_epoch": False, "max_iters": 10, "max_epochs": 12},
     r"by_epoch=False counts iterations, but train_cfg\.max_epochs=12 is set too"),
    ({"max_iters": 10}, r"max_iters=10 counts iterations, but training counts epochs"),
    ({"by_epoch": False, "max_iters": 0}, r"^train_cfg\.max_iters must be an integer >= 1"),
    ({"by_epoch": "no", "max_iters": 5}, r"^train_cfg\.by_epoch must be True or False"),
])
def test_iteration_settings_mistakes_are_clear_errors(section, message):
    with pytest.raises(ConfigError, match=message):
        TrainSettings.from_config(section)


def test_epoch_settings_keep_their_default_length():
    assert TrainSettings().max_epochs == 12 and TrainSettings().by_epoch
    settings = TrainSettings.from_config({"by_epoch": False, "max_iters": 90000})
    assert (settings.max_epochs, settings.max_iters) == (None, 90000)


def test_the_90k_recipe_counts_iterations():
    from detbox.apis.training import _trainer_options
    from detbox.config import load_config
    from tests.conftest import REPO_ROOT

    cfg = load_config(REPO_ROOT / "configs/faster_rcnn/faster_rcnn_r50_fpn_90k_coco.py")
    options = _trainer_options(cfg)
    train, checkpoint = options["train"], options["checkpoint"]
    assert (train.by_epoch, train.max_iters, train.max_epochs) == (False, 90000, None)
    assert (train.val_interval, checkpoint.interval) == (5000, 5000)
    optimizer = torch.optim.SGD(torch.nn.Linear(2, 2).parameters(), lr=cfg.optimizer.lr)
    schedule = build_lr_schedule(optimizer, options["lr_schedule_cfg"], iters_per_epoch=7330,
                                 max_iters=train.max_iters)
    assert schedule.lr_at(0) == pytest.approx(0.02 * 0.001)
    assert [schedule.lr_at(i) for i in (1000, 59999, 60000, 80000)] == pytest.approx(
        [0.02, 0.02, 0.002, 0.0002])


def test_intervals_of_one_iteration_are_warned_about(tmp_path, make_trainer):
    trainer = make_trainer(tmp_path, **ITERS, val_interval=1, checkpoint_interval=4)
    trainer.logger.close()
    text = next(tmp_path.glob("*.log")).read_text()
    assert "WARNING train_cfg.val_interval=1 counts iterations with train_cfg.by_epoch=False: " \
           "after every iteration; give it in iterations (e.g. 1) or 0" in text
    assert "checkpoint.interval=1" not in text
