"""The divergence warning: a finite loss far above its running median for several steps."""

import pytest
from conftest import fakes

from detbox.engine.divergence import DivergenceMonitor, build_divergence_monitor
from detbox.engine.settings import TrainSettings
from detbox.errors import ConfigError


def test_monitor_warns_once_after_patience_consecutive_exploding_steps():
    monitor = DivergenceMonitor(factor=10, window=4, patience=2)
    for step in range(1, 5):
        assert monitor.observe({"loss": 1.0 + 0.1 * step}, lr=0.01, iteration=step) is None
    assert monitor.observe({"loss": 50.0, "loss_cls": 49.0}, lr=0.01, iteration=5) is None
    warning = monitor.observe({"loss": 60.0, "loss_cls": 59.0, "acc": 0.5}, lr=0.02,
                              iteration=6)
    assert warning is not None
    assert "iteration 6" in warning and "loss_cls=59" in warning and "lr=0.02" in warning
    assert "grad_clip" in warning and "acc" not in warning
    assert monitor.observe({"loss": 70.0}, lr=0.02, iteration=7) is None  # once per streak
    assert monitor.observe({"loss": 1.2}, lr=0.02, iteration=8) is None


def test_monitor_waits_for_a_full_window_and_ignores_a_single_spike():
    monitor = DivergenceMonitor(factor=10, window=4, patience=2)
    assert all(monitor.observe({"loss": v}, 0.1, i) is None
               for i, v in enumerate([5.0, 0.1, 100.0, 1.0, 1.0, 1.0, 50.0, 1.0, 50.0], 1))


def test_settings_default_on_and_checked():
    assert build_divergence_monitor(TrainSettings().divergence).factor == 100
    assert build_divergence_monitor(False) is None
    assert build_divergence_monitor({"window": 5}).window == 5
    with pytest.raises(ConfigError, match="train_cfg.divergence"):
        TrainSettings.from_config({"divergence": {"factor": 0.5}})
    with pytest.raises(ConfigError, match="train_cfg.divergence"):
        TrainSettings.from_config({"divergence": {"windows": 5}})


class ExplodingLoss(fakes.FakeDetector):
    """From its ``start``-th call on, the classification loss jumps by 1e4 (no gradient
    change, so training itself stays sane)."""

    def __init__(self, start: int) -> None:
        super().__init__()
        self.start = start

    def loss(self, batch):
        losses = super().loss(batch)
        if self.calls >= self.start:
            losses["loss_cls"] = losses["loss_cls"] + 1e4
        return losses


def _log_text(work_dir) -> str:
    (log,) = work_dir.glob("*.log")
    return log.read_text()


def test_trainer_warns_on_exploding_loss(tmp_path, make_trainer):
    make_trainer(tmp_path, model=ExplodingLoss(start=8), max_epochs=2,
                 divergence={"window": 5, "patience": 2}).train()
    text = _log_text(tmp_path)
    assert text.count("the loss is exploding") == 1
    assert "iteration 9" in text and "loss_cls=1e+04" in text and "grad_clip" in text


def test_trainer_does_not_warn_on_normal_run(tmp_path, make_trainer):
    make_trainer(tmp_path, max_epochs=2, divergence={"window": 5, "patience": 2}).train()
    assert "exploding" not in _log_text(tmp_path)
