"""Choosing the device: CUDA when available, else CPU; an explicit choice is checked early.

Every check here runs before a model is built or a process group is joined, so a request for a
GPU that does not exist fails at once with the number of devices there are, instead of deep
inside CUDA or as a hang while other processes wait.
"""

from __future__ import annotations

import torch

from detbox.errors import DetboxError

__all__ = ["check_gpu_count", "device_for_rank", "resolve_device"]


def _cuda_count() -> int:
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def _describe(count: int) -> str:
    if count == 0:
        return "no CUDA device is available here"
    return f"this machine has {count} CUDA device(s) (cuda:0..cuda:{count - 1})"


def resolve_device(name: str | None = None) -> torch.device:
    """``None``/``'auto'`` picks CUDA when available; a missing CUDA device is a clear error."""
    if name in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise DetboxError(
            f"--device '{name}' is not a device name (use cpu, cuda or cuda:N)") from exc
    if device.type == "cuda":
        count = _cuda_count()
        if count == 0:
            raise DetboxError(f"--device {name}: CUDA is not available here; use --device cpu")
        if device.index is not None and device.index >= count:
            raise DetboxError(f"--device {name}: {_describe(count)}")
    return device


def check_gpu_count(requested: int, what: str = "processes") -> None:
    """Fail when ``requested`` GPUs are needed on this machine but fewer exist.

    Args:
        requested: GPUs this machine must provide (one per process started on it).
        what: how the request is named in the message.

    Raises:
        DetboxError: naming how many CUDA devices there are.
    """
    count = _cuda_count()
    if requested > count:
        fix = (f"start at most {count} process(es) per machine" if count
               else "use --device cpu")
        raise DetboxError(f"{requested} {what} need {requested} GPUs, but {_describe(count)}; "
                          f"{fix}")


def device_for_rank(name: str | None, *, local_rank: int, world_size: int,
                    local_world_size: int | None = None) -> torch.device:
    """The device of one process of a distributed run: the GPU numbered by its local rank.

    Args:
        name: ``None``/``'auto'`` (CUDA when available, else CPU), ``'cuda'`` or ``'cpu'``.
            ``'cuda:N'`` is refused with several processes, since each takes ``cuda:LOCAL_RANK``.
        local_rank: this process's index on its machine.
        world_size: processes in the whole run; 1 falls back to :func:`resolve_device`.
        local_world_size: processes on this machine, when the launcher says (checked against
            the GPUs there, so every process reports the shortage, not only the last ones).

    Raises:
        DetboxError: a GPU index that does not exist, or more processes than GPUs.
    """
    if world_size <= 1:
        return resolve_device(name)
    if name in (None, "", "auto"):
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = resolve_device(name)
    if device.type != "cuda":
        return device
    if device.index is not None:
        raise DetboxError(
            f"--device {name} names one GPU, but each of the {world_size} processes uses the GPU "
            "of its LOCAL_RANK; pass --device cuda (or leave it out) and choose GPUs with "
            "CUDA_VISIBLE_DEVICES"
        )
    check_gpu_count(max(local_world_size or 0, local_rank + 1), "processes on this machine")
    return torch.device("cuda", local_rank)
