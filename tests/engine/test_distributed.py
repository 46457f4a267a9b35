"""Two CPU processes (gloo): replicas stay equal, only rank 0 writes, failures stop every rank."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from engine_fakes import read_jsonl

from detbox.engine.checkpoint import LATEST_NAME, load_checkpoint
from tests._two_ranks import free_port, run_two_ranks

pytestmark = pytest.mark.skipif(
    not dist.is_available() or not dist.is_gloo_available(),
    reason="torch.distributed with the gloo backend is not available in this build",
)


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory) -> tuple[Path, list[dict]]:
    """Run both scenarios of ``distributed_worker`` once, in two processes."""
    root = tmp_path_factory.mktemp("ddp")
    here = str(Path(__file__).resolve().parent)
    port = free_port()
    commands = [
        [sys.executable, "-c", f"import sys; sys.path.insert(0, {here!r}); from engine_fakes "
         f"import distributed_worker; distributed_worker({rank}, 2, {port}, {str(root)!r})"]
        for rank in range(2)
    ]
    return root, run_two_ranks(commands, root, timeout=120)


def test_replicas_stay_equal_and_only_rank0_writes(two_ranks):
    root, results = two_ranks
    clean = [r["clean"] for r in results]
    assert clean[0]["seed"] == clean[1]["seed"]  # drawn on rank 0, shared
    assert clean[0]["error"] is None and clean[1]["error"] is None
    for key, value in clean[0]["weights"].items():
        if "running" not in key and "num_batches" not in key:  # BN statistics are per rank
            assert torch.allclose(torch.tensor(value), torch.tensor(clean[1]["weights"][key]))
    work_dir = root / "clean"
    assert len(list(work_dir.glob("*.log"))) == 1
    assert sorted(p.name for p in work_dir.glob("*.pth")) == [
        "epoch_1.pth", "epoch_2.pth", LATEST_NAME]
    assert len(load_checkpoint(work_dir / LATEST_NAME)["rng"]) == 2  # one state per rank
    steps = [r["step"] for r in read_jsonl(work_dir) if r["mode"] == "train"]
    assert steps == list(range(1, 7))  # 12 images / 2 ranks / batch 2 = 3 iterations per epoch


def test_non_finite_loss_on_one_rank_stops_both(two_ranks):
    root, results = two_ranks
    errors = [r["nan"]["error"] for r in results]
    assert "non-finite loss at iteration 4 (epoch 2/2, iter 1/3)" in errors[1]
    assert "loss_cls=nan" in errors[1]
    assert "non-finite loss on another rank at iteration 4" in errors[0]
    assert sorted(p.name for p in (root / "nan").glob("*.pth")) == ["epoch_1.pth", LATEST_NAME]


def test_sigterm_on_rank0_stops_both_at_the_same_iteration(two_ranks):
    root, results = two_ranks
    errors = [r["sigterm"]["error"] for r in results]
    for error in errors:
        assert "SIGTERM received: stopped after iteration 5 (epoch 2, batch 2/3)" in error
    checkpoint = load_checkpoint(root / "sigterm" / LATEST_NAME)
    assert (checkpoint["iteration"], checkpoint["epoch_batches"]) == (5, 2)
    assert len(checkpoint["rng"]) == 2
    assert (root / "sigterm" / "iter_5.pth").is_file()


def test_a_time_budget_stops_both_ranks_at_the_same_iteration(two_ranks):
    root, results = two_ranks
    budget = [r["budget"] for r in results]
    assert budget[0]["error"] is None and budget[1]["error"] is None
    assert budget[0]["iteration"] == budget[1]["iteration"] > 6  # past max_epochs=2
    checkpoint = load_checkpoint(root / "budget" / LATEST_NAME)
    assert checkpoint["iteration"] == budget[0]["iteration"]
    assert 1.0 <= checkpoint["time_budget"]["spent"] < 2.0
    lrs = [r["lr"] for r in read_jsonl(root / "budget") if r["mode"] == "train"]
    assert lrs[-1] < lrs[0]  # the step schedule's milestone (epoch 1 of 2) fell at half time
