"""An exponential moving average (EMA) of the model's weights, for evaluation and inference.

The average follows the ``ExpMomentumEMA`` rule of the YOLOX and RTMDet recipes: the first
update copies the model, and update ``n`` (counted from 0) moves each averaged parameter a
fraction ``alpha_n`` of the way to the trained one::

    alpha_n = (1 - momentum) * exp(-(1 + n) / gamma) + momentum
    ema <- ema + alpha_n * (weight - ema)

so early on, when the weights change fast, the average stays close to them, and after a few
``gamma`` updates it settles to a plain EMA with weight ``momentum`` for the newest value
(``momentum=0.0002``: a window of about 5000 updates). Buffers (BatchNorm running statistics)
are copied from the trained model by default, as MMEngine's ``EMAHook`` does: the running
statistics already are averages, and copying keeps them those of the weights being trained;
``buffers='average'`` averages the floating-point ones as well. Integer buffers (batch
counters) are always copied.

The averaged copy lives on the model's device, holds no gradients and is never trained: the
trainer updates it after each optimizer step and evaluates and checkpoints it.
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn

from detbox.engine.dist import unwrap_model
from detbox.engine.settings import EMASettings

__all__ = ["ModelEMA", "ema_momentum"]


def ema_momentum(update: int, momentum: float, gamma: float) -> float:
    """The weight ``alpha_n`` of the trained value in update ``n`` (0-based; update 0 copies).

    Args:
        update: how many updates came before this one.
        momentum: the weight the rule settles to.
        gamma: how many updates the early, larger weights last (the warmup's time constant).
    """
    if update == 0:
        return 1.0
    return (1 - momentum) * math.exp(-(1 + update) / gamma) + momentum


class ModelEMA:
    """The averaged copy of a model and the count of its updates.

    Args:
        model: the model being trained (a DDP wrapper is unwrapped); it is copied, so the
            average starts from its current weights.
        settings: the ``ema`` config section.

    Attributes:
        module: the averaged model (eval mode, ``requires_grad=False``), on ``model``'s
            device; its ``state_dict`` is what a checkpoint's ``state_dict`` holds (see
            :meth:`detbox.engine.training_state.TrainingState.state_dict`).
        steps: optimizer steps seen so far (the update counter ``n`` above).
    """

    def __init__(self, model: nn.Module, settings: EMASettings) -> None:
        self.settings = settings
        self.module = copy.deepcopy(unwrap_model(model)).eval()
        for param in self.module.parameters():
            param.requires_grad_(False)
            param.grad = None
        self.steps = 0

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Fold the weights of ``model`` in after an optimizer step (every
        ``update_interval``-th step; the others only count)."""
        settings = self.settings
        steps, self.steps = self.steps, self.steps + 1
        source = unwrap_model(model).state_dict()
        averaging = steps % settings.update_interval == 0
        alpha = ema_momentum(steps, settings.momentum, settings.gamma)
        if averaging:
            for name, param in self.module.named_parameters():
                param.lerp_(source[name].to(param.dtype), alpha)
        for name, buffer in self.module.named_buffers():
            value = source[name]
            if settings.buffers == "copy" or not buffer.is_floating_point():
                buffer.copy_(value)
            elif averaging:
                buffer.lerp_(value.to(buffer.dtype), alpha)

    def restart_from(self, model: nn.Module) -> None:
        """Start the average afresh from ``model``'s weights (e.g. after loading a checkpoint
        that has no EMA)."""
        self.module.load_state_dict(unwrap_model(model).state_dict())
        self.steps = 0
