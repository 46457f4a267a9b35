"""Building a run's training state from the built model and plain settings.

:func:`build_training_state` puts the model on its device (SyncBN, the CPU fast path, the DDP
wrapper), builds the optimizer with the learning rate scaled to the batch, the LR schedule,
the gradient stepper and the moving average of the weights, and collects the notes these
choices leave for the run's log.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from detbox.engine.amp import AmpSettings
from detbox.engine.best import MetricTracker
from detbox.engine.cpu_training import prepare_cpu_training
from detbox.engine.dist import get_world_size
from detbox.engine.ema import ModelEMA
from detbox.engine.gradient_stepper import GradientStepper
from detbox.engine.loader_info import loader_batch_size, loader_generator
from detbox.engine.lr_schedule import build_lr_schedule
from detbox.engine.optim import build_optimizer, scale_lr
from detbox.engine.settings import EMASettings, RuntimeSettings, TrainSettings
from detbox.engine.sync_bn import prepare_batch_norms
from detbox.engine.training_state import TrainingState
from detbox.engine.training_step import check_grad_clip, wrap_for_training

__all__ = ["build_training_state"]


def build_training_state(
    model: nn.Module,
    *,
    train_loader: Any,
    device: torch.device,
    amp: AmpSettings,
    optimizer_cfg: Mapping[str, Any],
    lr_schedule_cfg: Mapping[str, Any] | None,
    train: TrainSettings,
    runtime: RuntimeSettings,
    tracker: MetricTracker | None,
    ema: EMASettings | None,
    iters_per_epoch: int,
) -> tuple[TrainingState, nn.Module, list[str | None]]:
    """The model on its device (SyncBN, DDP wrapper), the optimizer with the scaled lr, the
    LR schedule, the stepper and the weights' average, in a fresh :class:`TrainingState`.

    Args:
        model: the detector; moved to ``device``.
        train_loader: the train loader (its batch size scales the lr; its generator's state
            travels with the checkpoints).
        device: the training device.
        amp: the mixed-precision settings.
        optimizer_cfg: see :func:`detbox.engine.optim.build_optimizer`.
        lr_schedule_cfg: see :func:`detbox.engine.lr_schedule.build_lr_schedule`.
        train: the ``train_cfg`` settings (length, accumulation, clipping).
        runtime: LR scaling by batch size, SyncBN, the CPU fast path, DDP options.
        tracker: the ``save_best`` history, or None.
        ema: the ``ema`` settings, or None to train without a moving average.
        iters_per_epoch: optimizer steps per epoch (the LR schedule counts them).

    Returns:
        The state; the module whose forward computes the losses (inside
        ``DistributedDataParallel`` when several ranks train); and the notes for the log,
        None where a choice has nothing to say.
    """
    model, bn_note = prepare_batch_norms(model.to(device), device, runtime.sync_bn)
    cpu_note = prepare_cpu_training(model, device, runtime.cpu_fast_path)
    loss_module = wrap_for_training(model, device, runtime.find_unused_parameters)
    optimizer_cfg, lr_note = scale_lr(
        optimizer_cfg, runtime.auto_scale_lr,
        batch_per_process=loader_batch_size(train_loader),
        world_size=get_world_size(), accumulate_steps=train.accumulate_steps)
    optimizer = build_optimizer(model, optimizer_cfg)
    scheduler = build_lr_schedule(optimizer, lr_schedule_cfg, iters_per_epoch=iters_per_epoch,
                                  max_epochs=train.max_epochs, max_iters=train.max_iters)
    stepper = GradientStepper(
        loss_module=loss_module, model=model, optimizer=optimizer, amp=amp,
        accumulate_steps=train.accumulate_steps, grad_clip=check_grad_clip(train.grad_clip))
    state = TrainingState(model=model, optimizer=optimizer, scheduler=scheduler,
                          stepper=stepper, tracker=tracker,
                          loader_generator=loader_generator(train_loader),
                          ema=ModelEMA(model, ema) if ema is not None else None)
    ema_note = (f"EMA of the weights: momentum {ema.momentum:g}, gamma {ema.gamma:g}, "
                f"buffers {ema.buffers}" if ema is not None else None)
    return state, loss_module, [bn_note, cpu_note, lr_note, amp.describe(), ema_note]
