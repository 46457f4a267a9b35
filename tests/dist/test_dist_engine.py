"""Two CPU processes (gloo) joined through the launcher's auto-detection of torchrun's variables:
distributed inference covers every image once, the validation loss and accumulated steps match
one process, DDP skips the gradient all-reduce between accumulated micro-batches, SyncBN falls
back to BatchNorm on CPU processes, and a distributed run resumes exactly."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

from tests._two_ranks import free_port, run_two_ranks

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import dist_worker  # noqa: E402

pytestmark = pytest.mark.skipif(
    not dist.is_available() or not dist.is_gloo_available(),
    reason="torch.distributed with the gloo backend is not available in this build",
)


@pytest.fixture(scope="module")
def ranks(tmp_path_factory) -> list[dict]:
    """Run every scenario of ``dist_worker`` once, in two processes."""
    root = tmp_path_factory.mktemp("dist_engine")
    port = free_port()
    envs = [{**os.environ, "RANK": str(rank), "WORLD_SIZE": "2", "LOCAL_RANK": str(rank),
             "LOCAL_WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port),
             "OMP_NUM_THREADS": "1"} for rank in range(2)]
    command = [sys.executable, str(HERE / "dist_worker.py"), str(root)]
    return run_two_ranks([command, command], root, timeout=180, envs=envs)


def test_the_launcher_joined_two_cpu_processes(ranks):
    assert [(r["world_size"], r["device"]) for r in ranks] == [(2, "cpu"), (2, "cpu")]


def test_gathered_predictions_hold_every_image_once_in_order(ranks):
    first, second = ranks[0]["gather"], ranks[1]["gather"]
    assert first["shard"] == [0, 1, 2, 3] and second["shard"] == [4, 5, 6]
    assert second["gathered"] is None
    assert first["gathered"] == list(range(dist_worker.NUM_VAL_IMAGES))
    assert first["mask_rows"] == [i + 1 for i in range(dist_worker.NUM_VAL_IMAGES)]  # masks kept


def test_distributed_val_loss_equals_one_process(ranks):
    from torch.utils.data import DataLoader

    from detbox.engine import compute_val_loss

    torch.manual_seed(0)
    model = dist_worker.MaskDetector()
    loader = DataLoader(dist_worker.StillDataset(), batch_size=3, collate_fn=dist_worker.collate)
    expected = compute_val_loss(model, loader, torch.device("cpu"))
    for result in ranks:
        assert result["val_loss"].keys() == expected.keys() == {"val_loss", "val_loss_bbox"}
        assert result["val_loss"]["val_loss"] == pytest.approx(expected["val_loss"], rel=1e-6)


def test_accumulation_syncs_once_per_step_and_applies_the_mean_gradient(ranks):
    one, two = ranks[0]["accumulate"]["accumulate_1"], ranks[0]["accumulate"]["accumulate_2"]
    assert (one["steps"], two["steps"]) == (2, 1)
    assert two["syncs"] > 0 and one["syncs"] == 2 * two["syncs"]  # no all-reduce in no_sync
    assert ranks[1]["accumulate"]["accumulate_2"]["weights"] == two["weights"]
    assert one["norm"] == two["norm"] == "BatchNorm2d"  # SyncBN needs GPUs
    assert one["notes"] == ["sync_bn=True ignored on cpu: SyncBN needs GPUs"]
    assert two["notes"] == ["SyncBN needs GPUs: 1 SyncBatchNorm layer(s) run as per-process "
                            "BatchNorm on cpu"]

    torch.manual_seed(0)
    model = dist_worker.MaskDetector().train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    micro_batches = [b for r in range(2) for b in dist_worker.still_batches(r, 2)]
    for batch in micro_batches:
        (model.loss(batch)["loss_bbox"] / len(micro_batches)).backward()
    optimizer.step()
    for name, param in model.named_parameters():
        assert torch.allclose(torch.tensor(two["weights"][name]), param, atol=1e-6, rtol=0), name


def test_distributed_resume_matches_the_uninterrupted_run(ranks):
    for result in ranks:
        assert result["resume"]["identical"] and result["resume"]["epoch"] == 3
        assert result["resume"]["metrics_rank"] == 0.0  # rank 0's evaluation, on every rank
