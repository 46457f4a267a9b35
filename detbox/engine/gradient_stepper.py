"""The update half of a training step: backward passes, accumulation, clipping, the step.

With ``accumulate_steps = N`` the optimizer steps once per N micro-batches (loader batches)
with the mean of their gradients: each micro-batch's loss is divided by the size of its group
before ``backward``, and gradients add up in ``.grad``. Under ``DistributedDataParallel`` the
non-final micro-batches run inside ``no_sync()``, so gradients cross the network once per step.
The last group of an epoch may be shorter (when the loader's length is not a multiple of N); its
losses are divided by its own size, so every step applies a mean.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from detbox.engine.amp import AmpSettings
from detbox.errors import ConfigError

__all__ = ["GradientStepper", "micro_batch_position"]


def micro_batch_position(index: int, batches_per_epoch: int, accumulate_steps: int
                         ) -> tuple[bool, bool, int]:
    """Where loader batch ``index`` (0-based, within an epoch) falls in its accumulation group.

    Returns:
        ``(first, last, group_size)``: whether it opens and closes its group, and how many
        micro-batches the group has.
    """
    start = index - index % accumulate_steps
    size = min(accumulate_steps, batches_per_epoch - start)
    return index == start, index == start + size - 1, size


class GradientStepper:
    """Turns micro-batch losses into optimizer steps.

    Args:
        loss_module: the module whose forward computes the losses (``DistributedDataParallel``
            when distributed; its ``no_sync`` is used between steps).
        model: the model whose parameters are clipped.
        optimizer: the optimizer to step.
        amp: mixed-precision settings; fp16 brings a dynamic loss scaler.
        accumulate_steps: micro-batches per optimizer step (>= 1).
        grad_clip: ``dict(max_norm=..., norm_type=...)`` (checked) or None.

    Attributes:
        skipped_steps: steps the fp16 loss scaler skipped (non-finite scaled gradients) in
            this run, restored on resume.
    """

    def __init__(self, *, loss_module: nn.Module, model: nn.Module,
                 optimizer: torch.optim.Optimizer, amp: AmpSettings, accumulate_steps: int = 1,
                 grad_clip: Mapping[str, float] | None = None) -> None:
        if int(accumulate_steps) != accumulate_steps or accumulate_steps < 1:
            raise ConfigError(f"train_cfg.accumulate_steps must be an integer >= 1, got "
                              f"{accumulate_steps!r}")
        self.loss_module = loss_module
        self.model = model
        self.optimizer = optimizer
        self.amp = amp
        self.accumulate_steps = int(accumulate_steps)
        self.grad_clip = dict(grad_clip) if grad_clip else None
        self.scaler = amp.make_scaler()
        self.skipped_steps = 0

    def sync_context(self, last: bool) -> contextlib.AbstractContextManager:
        """Wrap a micro-batch's forward and backward: skips the all-reduce unless ``last``."""
        no_sync = getattr(self.loss_module, "no_sync", None)
        if last or no_sync is None:
            return contextlib.nullcontext()
        return no_sync()

    def backward(self, total: Tensor, group_size: int) -> None:
        """Add this micro-batch's share (``total / group_size``) to the gradients."""
        loss = total / group_size if group_size > 1 else total
        if self.scaler is not None:
            loss = self.scaler.scale(loss)
        loss.backward()

    def clip(self) -> float | None:
        """Unscale (fp16) and clip the gradients; returns their norm before clipping, or None
        without clipping. A non-finite norm under fp16 means the scaler will skip the step."""
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)
        if self.grad_clip is None:
            return None
        params = [p for p in self.model.parameters() if p.grad is not None]
        return float(nn.utils.clip_grad_norm_(params, **self.grad_clip))

    def step(self) -> bool:
        """Apply the accumulated gradients; returns False when the fp16 scaler skipped it."""
        if self.scaler is None:
            self.optimizer.step()
            return True
        scale = self.scaler.get_scale()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        skipped = self.scaler.get_scale() < scale  # the scaler backs off only after an overflow
        self.skipped_steps += int(skipped)
        return not skipped

    def log_values(self) -> dict[str, float]:
        """Loss-scaler values for the training log (empty without fp16)."""
        if self.scaler is None:
            return {}
        return {"loss_scale": float(self.scaler.get_scale()),
                "skipped_steps": float(self.skipped_steps)}

    def tolerates_non_finite_gradients(self) -> bool:
        """True under fp16 loss scaling, where an overflow skips the step instead of failing."""
        return self.scaler is not None

    def state_dict(self) -> dict[str, Any]:
        return {"scaler": self.scaler.state_dict() if self.scaler is not None else None,
                "skipped_steps": self.skipped_steps}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if self.scaler is not None and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.skipped_steps = int(state.get("skipped_steps", 0))

