"""The moving average of the weights (``ema`` section): its arithmetic, buffers, evaluation,
checkpoints and exact resume."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from conftest import fakes
from engine_fakes import FakeDetector
from torch import nn

from detbox.engine.checkpoint import LATEST_NAME, extract_state_dict, load_checkpoint
from detbox.engine.ema import ModelEMA, ema_momentum
from detbox.engine.interrupt import TrainingInterrupted
from detbox.engine.settings import EMASettings
from detbox.errors import ConfigError
from tests._two_ranks import free_port, run_two_ranks

# Large weights for new values, so that the average and the trained weights differ clearly.
FAST = EMASettings(momentum=0.2, gamma=3)
ITERS = {"by_epoch": False, "max_iters": 14, "val_interval": 4, "checkpoint_interval": 5,
         "max_keep_checkpoints": None}


class OneWeight(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.zeros(()))


def _set(model: OneWeight, value: float) -> None:
    with torch.no_grad():
        model.w.fill_(value)


def _ema_weights(trainer) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in trainer.state.ema.module.state_dict().items()}


def _assert_same(got: dict, want: dict, atol: float = 0.0) -> None:
    assert sorted(got) == sorted(want)
    for key, value in want.items():
        assert torch.allclose(got[key].float(), value.float(), rtol=0, atol=atol), key


def test_three_updates_follow_the_hand_computed_sequence():
    model = OneWeight()
    ema = ModelEMA(model, EMASettings(momentum=0.1, gamma=2))
    # update 0 copies; then alpha_1 = 0.9 e^-1 + 0.1, alpha_2 = 0.9 e^-1.5 + 0.1
    expected = [1.0, 1.0 + 0.4310915 * (2.0 - 1.0), 1.4310915 + 0.3008171 * (4.0 - 1.4310915)]
    for value, want in zip([1.0, 2.0, 4.0], expected):
        _set(model, value)
        ema.update(model)
        assert ema.module.w.item() == pytest.approx(want, abs=1e-6)
    assert ema.steps == 3
    assert ema.module.w.item() == pytest.approx(2.2038636, abs=1e-6)
    assert model.w.item() == 4.0 and model.w.requires_grad
    assert not ema.module.w.requires_grad and ema.module.w.grad is None


def test_the_momentum_starts_at_one_and_settles_to_momentum():
    assert ema_momentum(0, 0.0002, 2000) == 1.0
    assert ema_momentum(1, 0.0002, 2000) == pytest.approx(0.9998 * math.exp(-2 / 2000) + 0.0002)
    assert ema_momentum(10**6, 0.0002, 2000) == pytest.approx(0.0002, rel=1e-9)


def test_update_interval_averages_every_nth_step_only():
    model = OneWeight()
    ema = ModelEMA(model, EMASettings(momentum=0.1, gamma=2, update_interval=2))
    for value in [1.0, 2.0, 4.0]:
        _set(model, value)
        ema.update(model)
    # step 0 copies 1.0, step 1 is skipped, step 2 averages with alpha_2
    assert ema.module.w.item() == pytest.approx(1.0 + 0.3008171 * 3.0, abs=1e-6)
    assert ema.steps == 3


@pytest.mark.parametrize("buffers", ["copy", "average"])
def test_buffers_are_copied_or_averaged_as_configured(buffers):
    model = nn.BatchNorm1d(2)
    ema = ModelEMA(model, EMASettings(momentum=0.5, gamma=1e9, buffers=buffers))
    ema.update(model)  # the copy
    with torch.no_grad():
        model.running_mean.fill_(4.0)
        model.num_batches_tracked.fill_(7)
    ema.update(model)
    want = 4.0 if buffers == "copy" else 0.0 + ema_momentum(1, 0.5, 1e9) * 4.0
    assert torch.allclose(ema.module.running_mean, torch.full((2,), want))
    assert int(ema.module.num_batches_tracked) == 7  # integer buffers are always copied
    assert not ema.module.training


def test_ema_settings_mistakes_are_clear_errors():
    with pytest.raises(ConfigError, match=r"config section 'ema' got an unknown key "
                                          r"'momentun'\. Did you mean 'momentum'\?"):
        EMASettings.from_config({"momentun": 0.001})
    with pytest.raises(ConfigError, match=r"^ema\.buffers must be 'copy' or 'average'"):
        EMASettings.from_config({"buffers": "mean"})
    with pytest.raises(ConfigError, match=r"^ema\.momentum must be a number in \(0, 1\)"):
        EMASettings.from_config({"momentum": 1.5})
    assert EMASettings.from_config({}) == EMASettings(momentum=0.0002, gamma=2000)


def test_the_config_accepts_an_ema_section(tmp_path):
    from detbox.apis.training import _trainer_options
    from detbox.config import load_config

    path = tmp_path / "cfg.py"
    path.write_text("optimizer = dict(type='SGD', lr=0.01)\nema = dict(momentum=0.001)\n")
    assert _trainer_options(load_config(path))["ema"] == EMASettings(momentum=0.001)
    path.write_text("optimizer = dict(type='SGD', lr=0.01)\nema = None\n")
    assert _trainer_options(load_config(path))["ema"] is None
    path.write_text("optimizer = dict(type='SGD', lr=0.01)\nema = dict(gama=5)\n")
    with pytest.raises(ConfigError, match="'gama'. Did you mean 'gamma'"):
        _trainer_options(load_config(path))


def _recording_evaluate_fn(seen: list):
    evaluate = fakes.make_evaluate_fn()

    def record(model):
        seen.append({k: v.clone() for k, v in model.state_dict().items()})
        return evaluate(model)

    return record


@pytest.mark.parametrize("accumulate_steps", [1, 2])
def test_validation_and_checkpoints_use_the_average(tmp_path, make_trainer, accumulate_steps):
    seen: list = []
    trainer = make_trainer(tmp_path, ema=FAST, evaluate_fn=_recording_evaluate_fn(seen),
                           max_epochs=2, accumulate_steps=accumulate_steps)
    metrics = trainer.train()
    assert trainer.state.ema.steps == trainer.iteration == 12 // accumulate_steps
    averaged, trained = _ema_weights(trainer), trainer.model.state_dict()
    assert not torch.allclose(averaged["cls.weight"], trained["cls.weight"])
    assert len(seen) == 2  # after each epoch; the last one is also the final evaluation
    _assert_same(seen[-1], averaged)
    assert metrics == fakes.make_evaluate_fn()(trainer.state.ema.module)

    checkpoint = load_checkpoint(tmp_path / LATEST_NAME)  # weights_only=True
    _assert_same(checkpoint["state_dict"], averaged)
    _assert_same(extract_state_dict(checkpoint), averaged)
    _assert_same(checkpoint["ema"]["training_state_dict"], trained)
    assert checkpoint["ema"]["steps"] == trainer.iteration
    log = next(tmp_path.glob("*.log")).read_text()
    assert "EMA of the weights: momentum 0.2, gamma 3, buffers copy" in log


def test_without_ema_nothing_changes(tmp_path, make_trainer):
    seen: list = []
    trainer = make_trainer(tmp_path, evaluate_fn=_recording_evaluate_fn(seen), max_epochs=1)
    trainer.train()
    assert trainer.state.ema is None and trainer.evaluated_model is trainer.model
    _assert_same(seen[-1], trainer.model.state_dict())
    checkpoint = load_checkpoint(tmp_path / LATEST_NAME)
    assert "ema" not in checkpoint
    _assert_same(checkpoint["state_dict"], trainer.model.state_dict())


class _SignalAt(FakeDetector):
    def __init__(self, at: int) -> None:
        super().__init__(sigterm_at_call=at)


@pytest.mark.parametrize("by_epoch", [False, True])
def test_a_resumed_run_ends_with_the_same_average(tmp_path, make_trainer, by_epoch):
    options = {"max_epochs": 2} if by_epoch else dict(ITERS)
    straight = make_trainer(tmp_path / "straight", ema=FAST, **options)
    straight.train()

    torch.manual_seed(0)
    stopped = make_trainer(tmp_path / "cut", model=_SignalAt(9), ema=FAST, **options)
    with pytest.raises(TrainingInterrupted):
        stopped.train()
    assert load_checkpoint(tmp_path / "cut" / LATEST_NAME)["ema"]["steps"] == 9
    resumed = make_trainer(tmp_path / "cut", ema=FAST, seed=99, model_seed=5, **options)
    assert resumed.resume("auto")
    assert resumed.state.ema.steps == 9
    resumed.train()
    _assert_same(_ema_weights(resumed), _ema_weights(straight), atol=1e-6)
    _assert_same(resumed.model.state_dict(), straight.model.state_dict(), atol=1e-6)
    assert resumed.state.ema.steps == straight.state.ema.steps


def test_a_time_budget_trains_the_average_too(tmp_path, make_trainer):
    trainer = make_trainer(tmp_path, ema=FAST, max_time=1, max_epochs=1)
    trainer.train()  # until one second is spent, whatever the epochs
    assert trainer.state.ema.steps == trainer.iteration > 0
    checkpoint = load_checkpoint(tmp_path / LATEST_NAME)
    _assert_same(checkpoint["state_dict"], _ema_weights(trainer))
    assert "time_budget" in checkpoint


def test_checkpoints_with_and_without_average_resume_either_way(tmp_path, make_trainer):
    plain = make_trainer(tmp_path / "plain", max_epochs=1)
    plain.train()
    with_ema = make_trainer(tmp_path / "plain", ema=FAST, max_epochs=2)
    assert with_ema.resume("auto")
    _assert_same(_ema_weights(with_ema), plain.model.state_dict())  # starts afresh from it
    assert with_ema.state.ema.steps == 0
    with_ema.train()
    text = "".join(p.read_text() for p in (tmp_path / "plain").glob("*.log"))
    assert "has no moving average of the weights (trained without ema)" in text

    dropped = make_trainer(tmp_path / "plain", max_epochs=3)
    assert dropped.resume("auto")  # the trained weights, not the average, continue
    _assert_same(dropped.model.state_dict(), with_ema.model.state_dict())


def test_an_inference_model_loads_the_averaged_weights(tmp_path, make_trainer):
    trainer = make_trainer(tmp_path, ema=FAST, max_epochs=1)
    trainer.train()
    model = FakeDetector()
    model.load_state_dict(extract_state_dict(load_checkpoint(tmp_path / LATEST_NAME)))
    _assert_same(model.state_dict(), _ema_weights(trainer))


def test_training_from_the_command_line_saves_the_average_for_inference(tmp_path):
    from detbox.apis.inference import init_detector
    from detbox.cli.main import main
    from tests.engine.test_train_detector import DEMO, TINY

    work = tmp_path / "run"
    options = [o for o in TINY if not o.startswith("train_cfg.max_epochs")]
    code = main(["train", DEMO, "--work-dir", str(work), "--cfg-options", *options,
                 "train_cfg.max_epochs=1", "ema=dict(momentum=0.3, gamma=1)"])
    assert code == 0
    checkpoint = load_checkpoint(work / LATEST_NAME)
    assert checkpoint["meta"]["config"]["ema"] == {"momentum": 0.3, "gamma": 1}
    assert checkpoint["ema"]["steps"] == 4
    averaged, trained = checkpoint["state_dict"], checkpoint["ema"]["training_state_dict"]
    assert any(not torch.equal(averaged[k], trained[k]) for k in averaged)
    model = init_detector(work / "config.json", work / LATEST_NAME, device="cpu", fast=False)
    _assert_same(model.state_dict(), averaged)


@pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(),
                    reason="torch.distributed with the gloo backend is not available")
def test_distributed_ranks_keep_the_same_average_of_the_unwrapped_model(tmp_path):
    here = str(Path(__file__).resolve().parent)
    port = free_port()
    commands = [
        [sys.executable, "-c", f"import sys; sys.path.insert(0, {here!r}); from ema_ddp_worker "
         f"import ema_worker; ema_worker({rank}, 2, {port}, {str(tmp_path)!r})"]
        for rank in range(2)
    ]
    results = run_two_ranks(commands, tmp_path, timeout=120)
    assert [(r["steps"], r["iteration"]) for r in results] == [(6, 6), (6, 6)]
    for rank in range(2):  # no 'module.' prefix: the average is of the unwrapped detector
        assert results[rank]["seen"] == results[rank]["averaged"]
    for key, value in results[0]["averaged"].items():
        if "running" not in key and "num_batches" not in key:  # BN statistics are per rank
            assert torch.allclose(torch.tensor(value), torch.tensor(results[1]["averaged"][key]))
    assert results[0]["averaged"]["cls.weight"] != results[0]["trained"]["cls.weight"]
    checkpoint = load_checkpoint(tmp_path / "run" / LATEST_NAME)
    _assert_same(checkpoint["state_dict"],
                 {k: torch.tensor(v) for k, v in results[0]["averaged"].items()}, atol=1e-7)


def test_a_step_the_fp16_loss_scaler_skips_does_not_update_the_average(tmp_path, make_trainer):
    trainer = make_trainer(tmp_path, ema=FAST, max_epochs=1)
    stepper, calls = trainer.state.stepper, []
    apply = stepper.step

    def every_third_skipped() -> bool:
        calls.append(len(calls) + 1)
        return False if len(calls) % 3 == 0 else apply()  # an overflow changes no weight

    stepper.step = every_third_skipped
    trainer.train()
    assert trainer.iteration == 6 and trainer.state.ema.steps == 4
