"""Running the evaluation callable during training without disturbing training.

The model is evaluated in eval mode without gradients, and the random generators are restored
afterwards, so a run that evaluates draws the same augmentations as one that does not (exact
resume relies on it). Rank 0's metrics are broadcast: they decide best checkpoints and early
stopping on every rank.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from detbox.engine.dist import broadcast_object, unwrap_model
from detbox.engine.logger import plain_metric
from detbox.engine.seed import preserved_rng_state

__all__ = ["evaluate_during_training"]

Pictures = list[tuple[str, np.ndarray]]


def evaluate_during_training(
    model: nn.Module,
    evaluate_fn: Callable[[nn.Module], Mapping[str, Any]],
    visualize_fn: Callable[[nn.Module], Pictures] | None = None,
) -> tuple[dict[str, Any], Pictures]:
    """Evaluate ``model`` (its DDP wrapper removed) and draw pictures of its predictions.

    Args:
        model: the detector being trained (back in train mode on return), or the moving
            average of its weights (back in eval mode): its mode is restored.
        evaluate_fn: ``evaluate_fn(model) -> {metric: value}``, called on every rank.
        visualize_fn: ``visualize_fn(model) -> [(name, (H, W, 3) uint8)]``; pass it on the
            rank that logs images only.

    Returns:
        Rank 0's metrics with one-element tensors and numpy numbers as floats, and the
        pictures (empty without ``visualize_fn``).
    """
    model = unwrap_model(model)
    was_training = model.training
    model.eval()
    pictures: Pictures = []
    try:
        with preserved_rng_state(), torch.no_grad():
            raw = evaluate_fn(model)
            if visualize_fn is not None:
                pictures = visualize_fn(model)
    finally:
        model.train(was_training)
    metrics = {key: plain_metric(value) for key, value in dict(raw or {}).items()}
    return broadcast_object(metrics), pictures
