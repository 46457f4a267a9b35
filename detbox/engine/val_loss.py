"""The training losses on the validation set (``evaluation=dict(val_loss=True)``).

The detector runs its ``loss()`` in training mode, so heads that assign targets or sample
proposals do exactly what they do in training, but with every BatchNorm and Dropout layer in
eval mode and without gradients: the loss of the current weights, measured without moving the
running statistics. Each rank measures its shard of the loader; the image-weighted means over
all ranks are returned everywhere.
"""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import nullcontext

import torch
from torch import nn

from detbox.engine.dist import all_gather_object, unwrap_model
from detbox.engine.training_step import parse_losses
from detbox.errors import ConfigError
from detbox.structures import ImageBatch

__all__ = ["compute_val_loss"]

_FROZEN_IN_VAL = (nn.modules.batchnorm._BatchNorm, nn.modules.dropout._DropoutNd)


def _loss_sums(model: nn.Module, loader: Iterable[ImageBatch], device: torch.device,
               autocast) -> tuple[dict[str, float], int]:
    sums: dict[str, float] = {}
    count = 0
    for batch in loader:
        if not batch.samples:  # every image of the batch unreadable (reported by evaluation)
            continue
        if any(sample.gt is None for sample in batch.samples):
            raise ConfigError(
                "evaluation.val_loss needs ground truth in the validation data: load it in the "
                "val pipeline (LoadAnnotations) and do not set test_mode on a split without "
                "annotations"
            )
        batch = batch.to(device)
        with autocast or nullcontext():
            losses = model.loss(batch)
        _, names, values = parse_losses(losses, device)
        size = len(batch.samples)
        for name, value in zip(names, values.tolist()):
            if name.startswith("loss"):
                sums[name] = sums.get(name, 0.0) + value * size
        count += size
    return sums, count


@torch.no_grad()
def compute_val_loss(model: nn.Module, loader: Iterable[ImageBatch], device: torch.device,
                     autocast=None) -> dict[str, float]:
    """Mean loss terms over the validation images of every rank.

    Args:
        model: the detector (wrappers are looked through); its train/eval modes are restored.
        loader: this rank's shard of the validation data, with ground truth.
        device: where batches go.
        autocast: a context to run ``loss()`` in (the training's mixed precision), or None.

    Returns:
        ``{'val_loss': total, 'val_loss_<term>': ...}`` for every ``loss*`` term.

    Raises:
        ConfigError: a validation sample without ground truth.
    """
    model = unwrap_model(model)
    modes = {module: module.training for module in model.modules()}
    model.train()
    for module in model.modules():
        if isinstance(module, _FROZEN_IN_VAL):
            module.eval()
    try:
        sums, count = _loss_sums(model, loader, device, autocast)
    finally:
        for module, training in modes.items():
            module.training = training
    totals: dict[str, float] = {}
    images = 0
    for rank_sums, rank_count in all_gather_object((sums, count)):
        images += rank_count
        for name, value in rank_sums.items():
            totals[name] = totals.get(name, 0.0) + value
    return {f"val_{name}": value / max(images, 1) for name, value in totals.items()}
