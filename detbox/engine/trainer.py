"""The epoch-based training loop.

The trainer receives built objects (model, train loader, evaluation callable) and plain
settings; building those from a config is the caller's job. It owns what happens between them:
per-iteration learning rates, mixed precision and gradient accumulation (through
:class:`GradientStepper`), the non-finite-loss guard, checkpoints that resume exactly, the best
checkpoints and early stopping, evaluation and logging. It runs unchanged on one process or
under ``torch.distributed`` (one process per GPU), where rank 0 alone logs and writes files.

An *iteration* is one optimizer step; with ``accumulate_steps = N`` it spans N loader batches.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from detbox.engine.amp import build_amp
from detbox.engine.best import build_tracker
from detbox.engine.checkpoint import LoadReport
from detbox.engine.dist import (
    all_reduce_mean,
    broadcast_object,
    get_rank,
    get_world_size,
    is_main_process,
    resolve_device,
    unwrap_model,
)
from detbox.engine.gradient_stepper import GradientStepper, micro_batch_position
from detbox.engine.logger import TrainLogger, WindowMeter, format_eta, plain_metric
from detbox.engine.lr_schedule import build_lr_schedule
from detbox.engine.optim import build_optimizer, scale_lr
from detbox.engine.seed import make_seed, preserved_rng_state, set_random_seed
from detbox.engine.sync_bn import prepare_batch_norms
from detbox.engine.tensorboard import check_tensorboard_available
from detbox.engine.trainer_state import (
    describe_run,
    load_pretrained,
    loader_batch_size,
    loader_length,
    restore_training_state,
    save_training_state,
    set_loader_epoch,
)
from detbox.engine.training_step import (
    check_grad_clip,
    non_finite_message,
    parse_losses,
    wrap_for_training,
)
from detbox.errors import ConfigError, TrainingError
from detbox.structures import ImageBatch

__all__ = ["Trainer"]

VisualizeFn = Callable[[nn.Module], list[tuple[str, np.ndarray]]]


def _due(epoch: int, interval: int, max_epochs: int) -> bool:
    """Whether something done every ``interval`` epochs (and after the last) is due."""
    return epoch == max_epochs or (interval > 0 and epoch % interval == 0)


class Trainer:
    """Trains a detector for ``max_epochs`` epochs.

    Args:
        model: a detector with ``loss(batch) -> dict[str, Tensor]``; moved to ``device``.
        train_loader: yields :class:`ImageBatch` (``batch_size`` images per process); gets
            ``set_epoch(epoch)`` (0-based) each epoch when it or its samplers have it.
        optimizer_cfg: see :func:`detbox.engine.optim.build_optimizer`.
        lr_schedule_cfg: see :func:`detbox.engine.lr_schedule.build_lr_schedule`.
        max_epochs: length of training.
        work_dir: where logs and checkpoints go.
        device: ``'cpu'``, ``'cuda'`` (this rank's GPU) or an explicit device.
        evaluate_fn: ``evaluate_fn(model) -> {metric: value}``, called in eval mode on every
            rank; only rank 0's result is used (distributed evaluation gathers inside it).
        val_interval: evaluate every this many epochs (and after the last; 0: only the last).
        checkpoint_interval: save every this many epochs (and after the last; 0: only the last).
        max_keep_checkpoints: ``epoch_N.pth`` files kept (0 or None: all).
        log_interval: log every this many iterations (and at each epoch's end).
        grad_clip: ``dict(max_norm=..., norm_type=2)`` or None.
        meta: JSON-able data stored in every checkpoint (config, class names, category ids).
        seed: the run's seed (rank r seeds its generators with ``seed + r``, so ranks draw
            different augmentations); None draws one, which is logged.
        deterministic: request deterministic kernels (see :func:`set_random_seed`).
        find_unused_parameters: passed to ``DistributedDataParallel``.
        progress_bar: a tqdm bar per epoch; None shows it on a terminal.
        accumulate_steps: loader batches per optimizer step (their mean gradient is applied).
        amp: mixed precision, see :func:`detbox.engine.amp.build_amp`.
        auto_scale_lr: ``dict(base_batch_size=16, enable=True)``: scale the optimizer's ``lr``
            by the total batch, see :func:`detbox.engine.optim.scale_lr`.
        sync_bn: use ``SyncBatchNorm`` when several GPU processes train.
        save_best: keep the checkpoints with the best value of this metric as
            ``best_<metric>_epoch_N.pth``.
        best_rule: ``'greater'`` or ``'less'`` (default: ``'less'`` for losses).
        max_keep_best: best checkpoints kept.
        patience: stop after this many evaluations without a better ``save_best`` value.
        tensorboard: also write TensorBoard events (``work_dir/tensorboard``).
        visualize_fn: ``visualize_fn(model) -> [(name, (H, W, 3) uint8)]``, pictures of
            predictions logged to TensorBoard at each evaluation (rank 0 only).
    """

    def __init__(
        self,
        *,
        model: nn.Module,
        train_loader: Any,
        optimizer_cfg: Mapping[str, Any],
        lr_schedule_cfg: Mapping[str, Any] | None,
        max_epochs: int,
        work_dir: str | os.PathLike,
        device: str | torch.device = "cpu",
        evaluate_fn: Callable[[nn.Module], Mapping[str, float]] | None = None,
        val_interval: int = 1,
        checkpoint_interval: int = 1,
        max_keep_checkpoints: int | None = 3,
        log_interval: int = 50,
        grad_clip: Mapping[str, Any] | None = None,
        meta: Mapping[str, Any] | None = None,
        seed: int | None = None,
        deterministic: bool = False,
        find_unused_parameters: bool = False,
        progress_bar: bool | None = None,
        accumulate_steps: int = 1,
        amp: Mapping[str, Any] | bool | None = None,
        auto_scale_lr: Mapping[str, Any] | None = None,
        sync_bn: bool = False,
        save_best: str | None = None,
        best_rule: str | None = None,
        max_keep_best: int = 1,
        patience: int | None = None,
        tensorboard: bool = False,
        visualize_fn: VisualizeFn | None = None,
    ) -> None:
        if max_epochs < 1 or log_interval < 1:
            raise ConfigError(f"need max_epochs >= 1 and log_interval >= 1, got "
                              f"{max_epochs} and {log_interval}")
        self.work_dir = Path(work_dir)
        self.device = resolve_device(device)
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
        self.amp = build_amp(amp, self.device)
        if tensorboard:
            check_tensorboard_available()
        self.tracker = build_tracker(save_best, rule=best_rule, max_keep=max_keep_best,
                                     patience=patience, has_evaluation=evaluate_fn is not None)
        self.seed = make_seed() if seed is None else int(seed)
        self.deterministic = deterministic
        set_random_seed(self.seed + get_rank(), deterministic)
        self.train_loader = train_loader
        self.batches_per_epoch = loader_length(train_loader)
        self.iters_per_epoch = math.ceil(self.batches_per_epoch / max(int(accumulate_steps), 1))
        self.max_epochs = int(max_epochs)
        self.model, notes = prepare_batch_norms(model.to(self.device), self.device, sync_bn)
        self.loss_module = wrap_for_training(self.model, self.device, find_unused_parameters)
        lr_note = self._build_update(optimizer_cfg, lr_schedule_cfg, auto_scale_lr,
                                     accumulate_steps, grad_clip)
        self.evaluate_fn = evaluate_fn
        self.visualize_fn = visualize_fn
        self.val_interval = int(val_interval)
        self.checkpoint_interval = int(checkpoint_interval)
        self.max_keep_checkpoints = max_keep_checkpoints
        self.log_interval = int(log_interval)
        self.meta = dict(meta or {})
        self.epoch = 0  # completed epochs
        self.iteration = 0  # completed iterations (optimizer steps)
        self.last_checkpoint: Path | None = None
        self._timer_start = (time.perf_counter(), 0)
        self.logger = TrainLogger(self.work_dir, progress_bar=progress_bar,
                                  tensorboard=tensorboard)
        for line in describe_run(self, [notes, lr_note, self.amp.describe()]):
            self.logger.info(line)

    def _build_update(self, optimizer_cfg: Mapping[str, Any],
                      lr_schedule_cfg: Mapping[str, Any] | None,
                      auto_scale_lr: Mapping[str, Any] | None, accumulate_steps: int,
                      grad_clip: Mapping[str, Any] | None) -> str | None:
        """Optimizer (with the scaled lr), LR schedule and stepper; returns the lr note."""
        optimizer_cfg, lr_note = scale_lr(
            optimizer_cfg, auto_scale_lr, batch_per_process=loader_batch_size(self.train_loader),
            world_size=get_world_size(), accumulate_steps=max(int(accumulate_steps), 1))
        self.optimizer = build_optimizer(self.model, optimizer_cfg)
        self.scheduler = build_lr_schedule(
            self.optimizer, lr_schedule_cfg,
            iters_per_epoch=self.iters_per_epoch, max_epochs=self.max_epochs,
        )
        self.stepper = GradientStepper(
            loss_module=self.loss_module, model=self.model, optimizer=self.optimizer,
            amp=self.amp, accumulate_steps=accumulate_steps, grad_clip=check_grad_clip(grad_clip),
        )
        return lr_note

    # ----------------------------------------------------------------- restore

    def resume(self, path: str | os.PathLike) -> bool:
        """Continue from a training checkpoint: weights, optimizer, LR schedule, counters, RNGs,
        the loss scaler and the ``save_best`` history.

        Args:
            path: a checkpoint file, or ``'auto'`` for the newest one in ``work_dir``.

        Returns:
            False when ``'auto'`` found no checkpoint (training starts from scratch).

        Raises:
            CheckpointError: unreadable, not a training checkpoint, or not this model's.
        """
        return restore_training_state(self, path)

    def load_from(self, path: str | os.PathLike) -> LoadReport:
        """Start from another checkpoint's weights; keys whose shape differs keep their init.

        Raises:
            CheckpointError: unreadable, or not a single tensor fits the model.
        """
        return load_pretrained(self, path)

    # ----------------------------------------------------------------- the loop

    @property
    def stopped_early(self) -> bool:
        return self.tracker is not None and self.tracker.should_stop

    def train(self) -> dict[str, Any]:
        """Run the remaining epochs; returns the final evaluation's metrics ({} without one).

        Raises:
            TrainingError: a non-finite loss, or a non-finite gradient without fp16 loss
                scaling (the message names the iteration, the loss terms and the images).
        """
        metrics: dict[str, Any] = {}
        evaluated_at = None
        self._timer_start = (time.perf_counter(), self.iteration)
        try:
            if self.epoch >= self.max_epochs or self.stopped_early:
                self.logger.info(f"already trained for {self.epoch}/{self.max_epochs} epochs"
                                 + (" (stopped early)" if self.stopped_early else ""))
            for epoch in range(self.epoch, self.max_epochs):
                if self.stopped_early:
                    break
                self._train_epoch(epoch)
                self.epoch = epoch + 1
                if self.evaluate_fn is not None and _due(self.epoch, self.val_interval,
                                                         self.max_epochs):
                    metrics, evaluated_at = self._evaluate(), self.epoch
                self._end_epoch(metrics if evaluated_at == self.epoch else None)
            if self.evaluate_fn is not None and evaluated_at != self.epoch:
                metrics = self._evaluate()
        except TrainingError as exc:
            self.logger.error(str(exc))
            raise
        finally:
            self.logger.close()
        return metrics

    def _train_epoch(self, epoch: int) -> None:
        self.model.train()
        set_loader_epoch(self.train_loader, epoch)
        meter = WindowMeter()
        steps = 0
        elapsed = data_elapsed = 0.0
        bar = self.logger.progress(self.batches_per_epoch, f"epoch {epoch + 1}/{self.max_epochs}")
        try:
            tick = time.perf_counter()
            for index, batch in enumerate(self.train_loader):
                data_elapsed += time.perf_counter() - tick
                values, stepped = self._train_step(batch, epoch, index)
                elapsed += time.perf_counter() - tick
                meter.update(values)
                lr = self.optimizer.param_groups[0]["lr"]
                if stepped:
                    steps += 1
                    meter.update({"time": elapsed, "data_time": data_elapsed})
                    elapsed = data_elapsed = 0.0
                    if steps % self.log_interval == 0 or steps == self.iters_per_epoch:
                        self._log_step(meter.average(), lr, epoch, steps)
                        meter.reset()
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{values['loss']:.4f}", lr=f"{lr:.1e}",
                                    eta=format_eta(self._eta_seconds()))
                tick = time.perf_counter()
        finally:
            if bar is not None:
                bar.close()

    def _train_step(self, batch: ImageBatch, epoch: int, index: int
                    ) -> tuple[dict[str, float], bool]:
        """One loader batch; the optimizer steps after the last batch of each accumulation
        group. Returns the values to log and whether it stepped."""
        first, last, group_size = micro_batch_position(index, self.batches_per_epoch,
                                                       self.stepper.accumulate_steps)
        if first:
            self.scheduler.apply(self.iteration)
            self.optimizer.zero_grad(set_to_none=True)
        batch = batch.to(self.device)
        with self.stepper.sync_context(last):
            with self.amp.autocast():
                losses = self.loss_module(batch)
            total, names, values = parse_losses(losses, self.device)
            local, averaged = self._check_losses(names, values, batch, epoch, index)
            self.stepper.backward(total, group_size)
        logged = dict(zip(names, averaged))
        if not last:
            return logged, False
        norm = self.stepper.clip()
        if norm is not None and math.isfinite(norm):
            logged["grad_norm"] = norm
        elif norm is not None and not self.stepper.tolerates_non_finite_gradients():
            self._raise_non_finite("gradient norm", [*names, "grad_norm"], [*local, norm], batch,
                                   epoch, index)
        self.stepper.step()
        self.iteration += 1
        return logged, True

    def _check_losses(self, names: list[str], values: torch.Tensor, batch: ImageBatch,
                      epoch: int, index: int) -> tuple[list[float], list[float]]:
        """This rank's and the all-rank mean values; raises when a loss is non-finite on any
        rank, so every rank stops at the same iteration."""
        local = values.tolist()
        averaged = all_reduce_mean(values).tolist() if get_world_size() > 1 else local
        is_loss = [name.startswith("loss") for name in names]
        if not all(math.isfinite(v) for v, loss in zip(averaged, is_loss) if loss):
            local_ok = all(math.isfinite(v) for v, loss in zip(local, is_loss) if loss)
            what = "loss on another rank" if local_ok else "loss"
            self._raise_non_finite(what, names, averaged if local_ok else local, batch, epoch,
                                   index)
        return local, averaged

    def _raise_non_finite(self, what: str, names: list[str], values: list[float],
                          batch: ImageBatch, epoch: int, index: int) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        raise TrainingError(non_finite_message(
            what=what, names=names, values=values, batch=batch, iteration=self.iteration + 1,
            epoch=epoch + 1, max_epochs=self.max_epochs, index=index + 1,
            iters_per_epoch=self.batches_per_epoch,
            checkpoint=str(self.last_checkpoint) if self.last_checkpoint else None,
        ))

    def _eta_seconds(self) -> float:
        """Time left for the whole run at this run's average speed so far (NaN at first)."""
        started, start_iteration = self._timer_start
        done = self.iteration - start_iteration
        per_iter = (time.perf_counter() - started) / done if done else math.nan
        return per_iter * (self.scheduler.max_iters - self.iteration)

    def _log_step(self, averages: dict[str, float], lr: float, epoch: int, step: int) -> None:
        record: dict[str, Any] = {
            "epoch": epoch + 1,
            "iter": step,
            "step": self.iteration,
            "lr": lr,
            "eta_seconds": self._eta_seconds(),
            **averages,
            **self.stepper.log_values(),
        }
        if self.device.type == "cuda":
            record["memory_mb"] = round(torch.cuda.max_memory_allocated(self.device) / 2**20)
            torch.cuda.reset_peak_memory_stats(self.device)
        self.logger.log_train(record, self.max_epochs, self.iters_per_epoch)

    # ----------------------------------------------------------------- epoch-end work

    def _end_epoch(self, metrics: Mapping[str, Any] | None) -> None:
        """Checkpoints after an epoch: the regular one when due, a best one when the tracked
        metric ranks among the best, and a regular one when training stops early."""
        best_file, dropped = None, []
        if self.tracker is not None and metrics is not None:
            if self.tracker.observe(metrics, self.epoch):
                best_file = self.tracker.file_name(self.epoch)
                dropped = self.tracker.keep(best_file, self.tracker.score_of(metrics), self.epoch)
        stop = self.stopped_early and self.epoch < self.max_epochs
        regular = stop or _due(self.epoch, self.checkpoint_interval, self.max_epochs)
        if regular or best_file:
            save_training_state(self, regular=regular, best_file=best_file, dropped=dropped)
        if stop:
            self.logger.info(self.tracker.describe_stop())

    def _evaluate(self) -> dict[str, Any]:
        model = unwrap_model(self.model)
        model.eval()
        images: list[tuple[str, np.ndarray]] = []
        try:
            with preserved_rng_state(), torch.no_grad():
                raw = self.evaluate_fn(model)
                if (self.visualize_fn is not None and is_main_process()
                        and self.logger.tensorboard is not None):
                    images = self.visualize_fn(model)
        finally:
            model.train()
        metrics = {key: plain_metric(value) for key, value in dict(raw or {}).items()}
        metrics = broadcast_object(metrics)  # rank 0's evaluation decides for every rank
        self.logger.log_val(self.epoch, metrics, step=self.iteration)
        self.logger.log_images(images, self.iteration)
        return metrics
