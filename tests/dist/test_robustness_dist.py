"""``detbox test-robustness`` under torchrun (two CPU processes) gives the numbers of one
process: each rank corrupts and predicts its shard, rank 0 gathers and evaluates."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from detbox.cli.main import main
from detbox.data.transforms.corrupt import load_imagecorruptions
from detbox.errors import ConfigError
from tests._two_ranks import free_port
from tests.tiny_detector import write_tiny


def _have_package() -> bool:
    try:
        load_imagecorruptions()
    except ConfigError:
        return False
    return True


@pytest.mark.slow
@pytest.mark.skipif(not _have_package(), reason="imagecorruptions is not installed "
                    "(pip install 'detbox[robustness]')")
def test_two_processes_give_the_single_process_numbers(tmp_path, monkeypatch):
    monkeypatch.setenv("DETBOX_CACHE", str(tmp_path / "cache"))
    config, checkpoint = (str(p) for p in write_tiny(tmp_path / "model", with_data=True))
    options = ["--device", "cpu", "--corruptions", "gaussian_noise", "--severities", "0", "2"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--nnodes=1",
               "--nproc_per_node=2", "--master_addr=127.0.0.1", f"--master_port={free_port()}",
               "-m", "detbox.cli.main", "test-robustness", config, checkpoint, *options,
               "--out", str(tmp_path / "two")]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert main(["test-robustness", config, checkpoint, *options, "--launcher", "none",
                 "--out", str(tmp_path / "one")]) == 0
    one, two = (json.loads((tmp_path / d / "robustness.json").read_text())
                for d in ("one", "two"))
    assert two["clean"] == one["clean"] and two["corruptions"] == one["corruptions"]
    assert list(two["corruptions"]["gaussian_noise"]) == ["2"]
