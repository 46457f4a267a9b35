"""Process-group helpers that also work, as no-ops, in a single process.

Every engine module asks these functions instead of ``torch.distributed`` directly, so the same
code runs on one CPU, one GPU or many GPUs: only rank 0 writes logs and checkpoints, and values
that decide control flow (a non-finite loss, a fresh random seed) are agreed on by all ranks.
"""

from __future__ import annotations

import os
from typing import Any

import torch
import torch.distributed as torch_dist
from torch import nn

__all__ = [
    "all_gather_object",
    "all_reduce_mean",
    "barrier",
    "broadcast_object",
    "get_rank",
    "get_world_size",
    "is_distributed",
    "is_main_process",
    "resolve_device",
    "unwrap_model",
]


def is_distributed() -> bool:
    """True when a ``torch.distributed`` process group is initialised."""
    return torch_dist.is_available() and torch_dist.is_initialized()


def get_rank() -> int:
    """This process's global rank; 0 without a process group."""
    return torch_dist.get_rank() if is_distributed() else 0


def get_world_size() -> int:
    """The number of processes in the group; 1 without a process group."""
    return torch_dist.get_world_size() if is_distributed() else 1


def is_main_process() -> bool:
    """True on rank 0, the process that logs and writes checkpoints."""
    return get_rank() == 0


def barrier() -> None:
    """Wait for every rank; a no-op in a single process."""
    if get_world_size() > 1:
        torch_dist.barrier()


def all_gather_object(obj: Any) -> list[Any]:
    """Each rank's ``obj`` (picklable), ordered by rank; ``[obj]`` in a single process."""
    if get_world_size() == 1:
        return [obj]
    gathered: list[Any] = [None] * get_world_size()
    torch_dist.all_gather_object(gathered, obj)
    return gathered


def broadcast_object(obj: Any) -> Any:
    """Rank 0's ``obj`` on every rank, e.g. a seed drawn at random on rank 0."""
    if get_world_size() == 1:
        return obj
    box = [obj]
    torch_dist.broadcast_object_list(box, src=0)
    return box[0]


def all_reduce_mean(values: torch.Tensor) -> torch.Tensor:
    """The element-wise mean of ``values`` over all ranks (a copy; the input is unchanged).

    A NaN or inf on any rank makes the mean non-finite everywhere, so every rank reaches the
    same decision about stopping.
    """
    if get_world_size() == 1:
        return values.clone()
    reduced = values.clone()
    torch_dist.all_reduce(reduced, op=torch_dist.ReduceOp.SUM)
    return reduced / get_world_size()


def resolve_device(device: str | torch.device) -> torch.device:
    """Turn ``'cuda'`` into this rank's GPU (``LOCAL_RANK``) when running distributed."""
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        index = int(os.environ.get("LOCAL_RANK", "0")) if get_world_size() > 1 else 0
        device = torch.device("cuda", index)
    return device


def unwrap_model(model: nn.Module) -> nn.Module:
    """The user's model inside ``DistributedDataParallel``/``DataParallel``/engine wrappers.

    Engine wrappers mark themselves with a true ``is_model_wrapper`` class attribute.
    """
    wrappers = (nn.parallel.DistributedDataParallel, nn.DataParallel)
    while isinstance(model, wrappers) or getattr(model, "is_model_wrapper", False):
        model = model.module
    return model
