"""Synchronized BatchNorm for distributed training, and plain BatchNorm where it cannot run.

With a few images per GPU, BatchNorm statistics are noisy; ``SyncBatchNorm`` computes them
over the whole distributed batch. torch synchronizes them only for GPU tensors, so on CPU
processes (gloo) SyncBN layers are turned back into ``BatchNorm2d``: the run then matches a
multi-GPU run except for per-process statistics, which is what a CPU smoke test needs.
"""

from __future__ import annotations

import torch
from torch import nn

from detbox.engine.dist import get_world_size

__all__ = ["count_batch_norms", "prepare_batch_norms", "revert_sync_batchnorm"]


def count_batch_norms(model: nn.Module) -> tuple[int, int]:
    """``(plain BatchNorm layers, SyncBatchNorm layers)`` in ``model``."""
    sync = sum(isinstance(m, nn.SyncBatchNorm) for m in model.modules())
    plain = sum(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules()) - sync
    return plain, sync


def revert_sync_batchnorm(module: nn.Module) -> nn.Module:
    """Replace every ``SyncBatchNorm`` by a ``BatchNorm2d`` with the same parameters, buffers
    and train/eval mode; returns the module (a new one if ``module`` itself was replaced)."""
    if isinstance(module, nn.SyncBatchNorm):
        plain = nn.BatchNorm2d(module.num_features, module.eps, module.momentum, module.affine,
                               module.track_running_stats)
        tensors = [*module.parameters(), *module.buffers()]
        if tensors:
            plain = plain.to(tensors[0].device)
        plain.load_state_dict(module.state_dict())
        if module.affine:
            plain.weight.requires_grad_(module.weight.requires_grad)
            plain.bias.requires_grad_(module.bias.requires_grad)
        plain.train(module.training)
        return plain
    for name, child in module.named_children():
        replaced = revert_sync_batchnorm(child)
        if replaced is not child:
            setattr(module, name, replaced)
    return module


def prepare_batch_norms(model: nn.Module, device: torch.device, sync_bn: bool
                        ) -> tuple[nn.Module, str | None]:
    """Make the model's BatchNorm layers fit the run, before the optimizer is built.

    Args:
        model: the detector.
        device: the training device.
        sync_bn: convert ``BatchNorm*`` to ``SyncBatchNorm`` when several GPU processes train.

    Returns:
        The model (possibly a new object) and a line for the log, or None when nothing changed.
    """
    plain, sync = count_batch_norms(model)
    world = get_world_size()
    if world > 1 and device.type != "cuda" and (sync or (sync_bn and plain)):
        model = revert_sync_batchnorm(model)
        return model, (f"SyncBN needs GPUs: {sync} SyncBatchNorm layer(s) run as per-process "
                       f"BatchNorm on {device}" if sync else
                       f"sync_bn=True ignored on {device}: SyncBN needs GPUs")
    if sync_bn and world > 1 and plain:
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        return model, f"sync_bn: {plain} BatchNorm layer(s) synchronized over {world} processes"
    if sync_bn and world == 1:
        return model, "sync_bn=True has no effect in a single process"
    return model, None
