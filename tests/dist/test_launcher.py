"""Reading the launcher's environment, device checks, and the launch scripts' usage errors."""

from __future__ import annotations

import re
import subprocess

import pytest
import torch

from detbox.cli.main import main
from detbox.engine.launcher import (
    detect_launcher,
    first_slurm_host,
    init_distributed,
    read_dist_env,
    slurm_port,
)
from detbox.errors import ConfigError, DetboxError
from detbox.utils.device import check_gpu_count, device_for_rank, resolve_device
from tests.conftest import REPO_ROOT

TORCHRUN = {"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2",
            "MASTER_ADDR": "10.0.0.1", "MASTER_PORT": "29511"}
SRUN = {"SLURM_PROCID": "5", "SLURM_NTASKS": "8", "SLURM_LOCALID": "1", "SLURM_STEP_ID": "0",
        "SLURM_JOB_ID": "4242", "SLURM_STEP_NODELIST": "gpu[007-008]",
        "SLURM_NTASKS_PER_NODE": "4(x2)"}


def test_torchrun_variables_are_detected_first():
    assert detect_launcher(TORCHRUN) == "torchrun"
    assert detect_launcher({**SRUN, **TORCHRUN}) == "torchrun"  # torchrun inside an allocation
    info = read_dist_env("auto", TORCHRUN)
    assert (info.rank, info.world_size, info.local_rank, info.local_world_size) == (3, 4, 1, 2)
    assert (info.master_addr, info.master_port) == ("10.0.0.1", 29511)


def test_slurm_step_variables_give_rank_address_and_a_job_port():
    info = read_dist_env("auto", SRUN)
    assert (info.launcher, info.rank, info.world_size, info.local_rank) == ("slurm", 5, 8, 1)
    assert info.master_addr == "gpu007" and info.local_world_size == 4
    assert info.master_port == slurm_port("4242") != slurm_port("4243")
    assert 20000 <= info.master_port < 40000
    assert read_dist_env("slurm", {**SRUN, "MASTER_PORT": "12345"}).master_port == 12345


def test_a_batch_script_or_a_single_task_is_one_process():
    no_step = {k: v for k, v in SRUN.items() if k != "SLURM_STEP_ID"}
    assert detect_launcher(no_step) == "none"
    assert detect_launcher({**SRUN, "SLURM_NTASKS": "1"}) == "none"
    assert detect_launcher({}) == "none"
    assert read_dist_env("none", TORCHRUN).world_size == 1


@pytest.mark.parametrize(("nodelist", "host"), [
    ("node1", "node1"), ("node1,node2", "node1"), ("gpu[003-005,009]", "gpu003"),
    ("gpu-a[12,14]-ib,cpu1", "gpu-a12"),
])
def test_first_slurm_host(nodelist, host):
    assert first_slurm_host(nodelist) == host


def test_launcher_mistakes_are_clear():
    with pytest.raises(ConfigError, match=r"needs \$RANK and \$WORLD_SIZE.*dist_train.sh"):
        read_dist_env("torchrun", {})
    with pytest.raises(ConfigError, match="Did you mean 'slurm'"):
        read_dist_env("slurn", {})
    with pytest.raises(ConfigError, match="SLURM_PROCID='x' is not an integer"):
        read_dist_env("slurm", {**SRUN, "SLURM_PROCID": "x"})


def test_single_process_joins_nothing():
    assert init_distributed("none", "cpu") == torch.device("cpu")
    assert not torch.distributed.is_initialized()


@pytest.fixture
def gpus(monkeypatch):
    """Pretend this machine has ``n`` CUDA devices."""

    def pretend(n: int) -> None:
        monkeypatch.setattr(torch.cuda, "is_available", lambda: n > 0)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: n)

    return pretend


def test_more_processes_than_gpus_is_an_error_naming_the_count(gpus):
    gpus(2)
    assert device_for_rank(None, local_rank=1, world_size=4, local_world_size=2) == \
        torch.device("cuda", 1)
    with pytest.raises(DetboxError, match=r"4 processes on this machine need 4 GPUs, but this "
                                          r"machine has 2 CUDA device\(s\) \(cuda:0..cuda:1\)"):
        device_for_rank("cuda", local_rank=0, world_size=4, local_world_size=4)
    with pytest.raises(DetboxError, match="3 processes on this machine need 3 GPUs"):
        device_for_rank(None, local_rank=2, world_size=3)
    with pytest.raises(DetboxError, match="names one GPU.*CUDA_VISIBLE_DEVICES"):
        device_for_rank("cuda:1", local_rank=0, world_size=2)
    with pytest.raises(DetboxError, match=r"--device cuda:5: this machine has 2 CUDA"):
        resolve_device("cuda:5")
    assert device_for_rank("cpu", local_rank=3, world_size=4) == torch.device("cpu")


def test_gpu_checks_without_cuda(gpus):
    gpus(0)
    assert device_for_rank(None, local_rank=1, world_size=2) == torch.device("cpu")
    with pytest.raises(DetboxError, match="no CUDA device is available here; use --device cpu"):
        check_gpu_count(2)
    with pytest.raises(DetboxError, match="CUDA is not available here"):
        resolve_device("cuda")


def test_the_cli_checks_the_device_before_training(gpus, tmp_path, capsys):
    gpus(1)
    code = main(["train", str(REPO_ROOT / "configs/demo/retinanet_r18_fpn_synthetic.py"),
                 "--device", "cuda:3", "--work-dir", str(tmp_path / "w")])
    assert code == 2
    assert "cuda:3: this machine has 1 CUDA device(s) (cuda:0..cuda:0)" in capsys.readouterr().err
    assert not (tmp_path / "w").exists()


@pytest.mark.parametrize(("script", "args", "message"), [
    ("dist_train.sh", [], "usage: .*dist_train.sh CONFIG NGPUS"),
    ("dist_train.sh", ["cfg.py", "two"], "NGPUS must be a positive integer, got 'two'"),
    ("dist_test.sh", ["cfg.py", "x.pth"], "usage: .*dist_test.sh CONFIG CHECKPOINT NGPUS"),
    ("slurm_train.sh", ["part", "job"], "usage: .*slurm_train.sh PARTITION JOB_NAME"),
])
def test_script_usage_errors(script, args, message):
    result = subprocess.run(["bash", str(REPO_ROOT / "tools" / script), *args],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert re.search(message, result.stderr), result.stderr
