"""SIGINT/SIGTERM stop training after the current step with a checkpoint that resumes exactly;
a full disk while checkpointing leaves the previous checkpoints intact."""

import errno
import os
import signal

import pytest
import torch
from conftest import fakes

from detbox.engine.checkpoint import LATEST_NAME, load_checkpoint
from detbox.engine.interrupt import StopSignals, TrainingInterrupted
from detbox.errors import CheckpointError


class SignalAtCall(fakes.FakeDetector):
    """Sends a signal to its own process during its ``at``-th loss call."""

    def __init__(self, at: int, signum: int) -> None:
        super().__init__()
        self.at, self.signum = at, signum

    def loss(self, batch):
        losses = super().loss(batch)
        if self.calls == self.at:
            os.kill(os.getpid(), self.signum)
        return losses


def _losses(work_dir) -> dict:
    return {(r["epoch"], r["iter"]): r["loss"] for r in fakes.read_jsonl(work_dir)
            if r.get("mode") == "train"}


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_mid_epoch_writes_checkpoint_and_resume_equals_straight_run(
        tmp_path, make_trainer, signum):
    straight = make_trainer(tmp_path / "straight")
    straight.train()

    torch.manual_seed(0)
    interrupted = make_trainer(tmp_path / "cut", model=SignalAtCall(8, signum))
    with pytest.raises(TrainingInterrupted) as caught:
        interrupted.train()
    assert caught.value.exit_code == 128 + signum
    message = str(caught.value)
    assert signal.Signals(signum).name in message and "iteration 8" in message
    assert "batch 2/6" in message and "--resume" in message
    checkpoint = load_checkpoint(tmp_path / "cut" / LATEST_NAME)
    assert (checkpoint["epoch"], checkpoint["iteration"], checkpoint["epoch_batches"]) == (1, 8, 2)
    assert (tmp_path / "cut" / "iter_8.pth").is_file()
    assert signal.getsignal(signum) is not interrupted.stop_signals._handle

    resumed = make_trainer(tmp_path / "cut", model_seed=5)
    assert resumed.resume("auto")
    resumed.train()
    for key, value in straight.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[key]), key
    assert _losses(tmp_path / "cut") == _losses(tmp_path / "straight")
    assert not (tmp_path / "cut" / "iter_8.pth").exists()  # superseded by epoch_2.pth


def test_second_ctrl_c_stops_at_once():
    before = signal.getsignal(signal.SIGINT)  # SIG_IGN under nohup / a background job
    with StopSignals() as signals:
        os.kill(os.getpid(), signal.SIGINT)
        assert signals.signum == signal.SIGINT
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is before


def test_disk_full_while_checkpointing_keeps_previous_checkpoints(
        tmp_path, make_trainer, monkeypatch):
    work = tmp_path / "run"
    make_trainer(work, max_epochs=1).train()
    before = {p.name: p.read_bytes() for p in work.glob("*.pth")}
    assert "epoch_1.pth" in before and LATEST_NAME in before

    def full_disk(obj, f):
        f.write(b"partial checkpoint bytes")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(torch, "save", full_disk)
    trainer = make_trainer(work, max_epochs=2)
    trainer.resume("auto")
    with pytest.raises(CheckpointError) as caught:
        trainer.train()
    message = str(caught.value)
    assert "no space left" in message and str(work / "epoch_2.pth") in message
    assert "\n" not in message
    monkeypatch.undo()
    assert {p.name: p.read_bytes() for p in work.glob("*.pth")} == before
    assert not [p for p in work.iterdir() if p.name.endswith(".tmp")]
    assert load_checkpoint(work / LATEST_NAME)["epoch"] == 1
