"""``--resume auto`` continues from the newest checkpoint that loads, saying what it skipped."""

import pytest
import torch
from conftest import fakes

from detbox.engine.checkpoint import LATEST_NAME, resume_candidates
from detbox.errors import CheckpointError


def _truncate_latest(work_dir):
    """A latest.pth cut short (a full disk, a kill mid-copy), on its own inode."""
    latest = work_dir / LATEST_NAME
    data = latest.read_bytes()
    latest.unlink()
    latest.write_bytes(data[: len(data) // 3])


def test_resume_auto_skips_truncated_latest_for_newest_epoch_file(tmp_path, make_trainer):
    straight = make_trainer(tmp_path / "straight", max_epochs=3)
    straight.train()
    work = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):  # a crash before the third epoch
        make_trainer(work, max_epochs=3, loader=fakes.make_loader(fail_at_epoch=2)).train()
    _truncate_latest(work)
    assert resume_candidates(work) == [work / LATEST_NAME, work / "epoch_2.pth",
                                       work / "epoch_1.pth"]

    resumed = make_trainer(work, max_epochs=3, model_seed=4)
    assert resumed.resume("auto")
    assert resumed.epoch == 2 and resumed.last_checkpoint == work / "epoch_2.pth"
    resumed.train()
    for key, value in straight.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[key]), key
    log = "".join(p.read_text() for p in work.glob("*.log"))
    assert f"--resume auto: skipped {work / LATEST_NAME}" in log and "truncated" in log


def test_resume_auto_with_no_loadable_checkpoint_says_why(tmp_path, make_trainer):
    work = tmp_path / "run"
    work.mkdir()
    (work / LATEST_NAME).write_bytes(b"not a checkpoint")
    (work / "epoch_1.pth").write_bytes(b"")
    with pytest.raises(CheckpointError, match="no checkpoint in .* can be resumed: latest.pth"):
        make_trainer(work).resume("auto")


def test_resume_auto_in_empty_dir_starts_fresh(tmp_path, make_trainer):
    assert make_trainer(tmp_path / "new").resume("auto") is False
