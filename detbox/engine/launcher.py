"""Joining the process group that a launcher (torchrun, SLURM's srun) started this process in.

A launcher starts one process per GPU and tells each who it is through environment variables:
torchrun sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``LOCAL_WORLD_SIZE``, ``MASTER_ADDR`` and
``MASTER_PORT``; srun sets ``SLURM_PROCID``, ``SLURM_NTASKS``, ``SLURM_LOCALID`` and the node
list, from which the master address and port are derived here. ``'auto'`` picks whichever set
is present. NCCL joins GPUs, gloo CPUs.
"""

from __future__ import annotations

import atexit
import datetime
import os
import re
import zlib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.distributed as torch_dist

from detbox.engine.dist import is_distributed
from detbox.errors import ConfigError
from detbox.registry import closest_match
from detbox.utils.device import device_for_rank

__all__ = [
    "LAUNCHERS",
    "DistEnv",
    "detect_launcher",
    "distributed_session",
    "first_slurm_host",
    "init_distributed",
    "read_dist_env",
    "slurm_port",
]

LAUNCHERS = ("auto", "none", "torchrun", "pytorch", "slurm")
_TORCHRUN_KEYS = ("RANK", "WORLD_SIZE")
_SLURM_KEYS = ("SLURM_PROCID", "SLURM_NTASKS")
_PORT_BASE, _PORT_SPAN = 20000, 20000


@dataclass(frozen=True)
class DistEnv:
    """Who this process is in a distributed run, as its launcher described it."""

    launcher: str
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    local_world_size: int | None = None
    master_addr: str | None = None
    master_port: int | None = None


def detect_launcher(env: Mapping[str, str]) -> str:
    """``'torchrun'``, ``'slurm'`` or ``'none'`` from the environment variables present.

    SLURM counts only inside an ``srun`` step (``SLURM_STEP_ID`` set) with several tasks: a
    batch script or an interactive allocation that runs ``python`` directly is one process,
    even though ``SLURM_NTASKS`` may say more.
    """
    if all(key in env for key in _TORCHRUN_KEYS):
        return "torchrun"
    in_step = "SLURM_STEP_ID" in env or "SLURM_STEPID" in env
    if in_step and all(key in env for key in _SLURM_KEYS) and _int(env, "SLURM_NTASKS") > 1:
        return "slurm"
    return "none"


def _int(env: Mapping[str, str], key: str) -> int:
    try:
        return int(env[key])
    except KeyError:
        raise ConfigError(f"the launcher did not set ${key}, which this launcher needs") from None
    except ValueError:
        raise ConfigError(f"${key}={env[key]!r} is not an integer") from None


def first_slurm_host(nodelist: str) -> str:
    """The first host of a SLURM node list: ``'gpu[003-005,9],cpu1'`` -> ``'gpu003'``."""
    match = re.match(r"([^,\[]+)(?:\[([^\]]+)\])?", nodelist.strip())
    if not match:
        raise ConfigError(f"cannot read the SLURM node list {nodelist!r}; set MASTER_ADDR")
    prefix, ranges = match.groups()
    if not ranges:
        return prefix
    return prefix + ranges.split(",")[0].split("-")[0]


def slurm_port(job_id: str) -> int:
    """A master port derived from the job id: the same for every task of a job, and different
    (but for a 1-in-20000 clash) for two jobs that share a node."""
    return _PORT_BASE + zlib.crc32(job_id.encode()) % _PORT_SPAN


def _slurm_env(env: Mapping[str, str]) -> DistEnv:
    nodelist = env.get("SLURM_STEP_NODELIST") or env.get("SLURM_JOB_NODELIST") or env.get(
        "SLURM_NODELIST")
    addr = env.get("MASTER_ADDR") or (first_slurm_host(nodelist) if nodelist else None)
    if addr is None:
        raise ConfigError("SLURM set no node list; set MASTER_ADDR to the first node's address")
    port = env.get("MASTER_PORT") or slurm_port(env.get("SLURM_JOB_ID", "0"))
    per_node = env.get("SLURM_NTASKS_PER_NODE", "").split("(")[0]
    return DistEnv(
        launcher="slurm", rank=_int(env, "SLURM_PROCID"), world_size=_int(env, "SLURM_NTASKS"),
        local_rank=_int(env, "SLURM_LOCALID"), master_addr=addr, master_port=int(port),
        local_world_size=int(per_node) if per_node.isdigit() else None,
    )


def read_dist_env(launcher: str = "auto", env: Mapping[str, str] | None = None) -> DistEnv:
    """Describe this process from ``env`` (default ``os.environ``) for ``launcher``.

    Raises:
        ConfigError: an unknown launcher, or one whose variables are missing.
    """
    env = os.environ if env is None else env
    if launcher not in LAUNCHERS:
        match = closest_match(str(launcher), list(LAUNCHERS))
        hint = f" Did you mean '{match}'?" if match else ""
        raise ConfigError(f"unknown launcher {launcher!r}.{hint} Choose from: "
                          f"{', '.join(LAUNCHERS)}")
    if launcher == "auto":
        launcher = detect_launcher(env)
    if launcher == "none":
        return DistEnv(launcher="none")
    if launcher == "slurm":
        return _slurm_env(env)
    missing = [key for key in _TORCHRUN_KEYS if key not in env]
    if missing:
        raise ConfigError(
            f"--launcher {launcher} needs ${' and $'.join(missing)}, which torchrun sets: start "
            "with tools/dist_train.sh or torchrun --nproc_per_node=N"
        )
    local_world = env.get("LOCAL_WORLD_SIZE")
    return DistEnv(
        launcher="torchrun", rank=_int(env, "RANK"), world_size=_int(env, "WORLD_SIZE"),
        local_rank=int(env.get("LOCAL_RANK", "0")),
        local_world_size=int(local_world) if local_world else None,
        master_addr=env.get("MASTER_ADDR"),
        master_port=int(env["MASTER_PORT"]) if env.get("MASTER_PORT") else None,
    )


def init_distributed(launcher: str = "auto", device: str | None = None,
                     backend: str | None = None, timeout_minutes: float = 30.0) -> torch.device:
    """Join the process group described by the environment; returns this process's device.

    The device is checked before joining (a GPU that does not exist is an error, not a hang),
    then selected with ``torch.cuda.set_device`` so NCCL and the model use the same GPU. A
    single process (no launcher, or a world of one) joins nothing. A group that is already
    initialised is kept.

    Args:
        launcher: one of :data:`LAUNCHERS`; ``'pytorch'`` is another name for ``'torchrun'``.
        device: ``--device``: None/``'auto'``, ``'cuda'`` or ``'cpu'``.
        backend: default ``'nccl'`` for GPUs, ``'gloo'`` for CPUs.
        timeout_minutes: how long collective operations wait for a slow rank.
    """
    if is_distributed():
        rank, world = torch_dist.get_rank(), torch_dist.get_world_size()
        local_rank = int(os.environ.get("LOCAL_RANK", rank))
        return device_for_rank(device, local_rank=local_rank, world_size=world)
    info = read_dist_env("torchrun" if launcher == "pytorch" else launcher)
    chosen = device_for_rank(device, local_rank=info.local_rank, world_size=info.world_size,
                             local_world_size=info.local_world_size)
    if info.world_size <= 1:
        return chosen
    if chosen.type == "cuda":
        torch.cuda.set_device(chosen)
    os.environ.update(RANK=str(info.rank), WORLD_SIZE=str(info.world_size),
                      LOCAL_RANK=str(info.local_rank))
    if info.master_addr:
        os.environ["MASTER_ADDR"] = info.master_addr
    if info.master_port:
        os.environ["MASTER_PORT"] = str(info.master_port)
    torch_dist.init_process_group(
        backend or ("nccl" if chosen.type == "cuda" else "gloo"), init_method="env://",
        rank=info.rank, world_size=info.world_size,
        timeout=datetime.timedelta(minutes=timeout_minutes),
    )
    atexit.register(_leave_group)
    return chosen


def _leave_group() -> None:
    if is_distributed():
        torch_dist.destroy_process_group()


@contextmanager
def distributed_session(launcher: str = "auto", device: str | None = None
                        ) -> Iterator[torch.device]:
    """:func:`init_distributed` for the length of a block, leaving the group when it ends
    (only if this block joined it)."""
    joined = not is_distributed()
    chosen = init_distributed(launcher, device)
    try:
        yield chosen
    finally:
        if joined and is_distributed():
            torch_dist.destroy_process_group()
