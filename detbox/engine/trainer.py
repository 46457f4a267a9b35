"""The training loop, counted in epochs, in iterations or against a time budget.

The trainer receives built objects (model, train loader, evaluation callable) and plain
settings; building those from a config is the caller's job. It owns what happens between them:
per-iteration learning rates, mixed precision and gradient accumulation (through
:class:`GradientStepper`), the non-finite-loss guard, checkpoints that resume exactly, the best
checkpoints and early stopping, the moving average of the weights (``ema``), evaluation and
logging. It runs unchanged on one process or under ``torch.distributed`` (one process per
GPU), where rank 0 alone logs and writes files.

An *iteration* is one optimizer step; with ``accumulate_steps = N`` it spans N loader batches.
How long the loop runs and when it evaluates and checkpoints is the :class:`TrainPlan`'s
business: after every epoch (``by_epoch=True``) or every iteration (``by_epoch=False``), until
the length or the time budget (``max_time``) is reached. The data restarts epoch after epoch
either way, so the sampler's shuffling still follows the epoch.
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
from detbox.engine.best import MetricTracker, build_tracker
from detbox.engine.checkpoint import LoadReport
from detbox.engine.cpu_training import prepare_cpu_training
from detbox.engine.dist import (
    get_rank,
    get_world_size,
    is_main_process,
    resolve_device,
    unwrap_model,
)
from detbox.engine.divergence import build_divergence_monitor
from detbox.engine.ema import ModelEMA
from detbox.engine.evaluation_call import evaluate_during_training
from detbox.engine.gradient_stepper import GradientStepper
from detbox.engine.interrupt import StopSignals, TrainingInterrupted
from detbox.engine.loader_info import (
    iterate_from,
    loader_batch_size,
    loader_generator,
    loader_length,
    set_loader_epoch,
)
from detbox.engine.logger import TrainLogger, WindowMeter, describe_run, format_eta
from detbox.engine.lr_schedule import build_lr_schedule
from detbox.engine.optim import build_optimizer, scale_lr
from detbox.engine.resume import load_start_weights, resume_state
from detbox.engine.run_log import RunLog
from detbox.engine.seed import make_seed, set_random_seed
from detbox.engine.settings import (
    CheckpointSettings,
    EMASettings,
    LogSettings,
    RuntimeSettings,
    TrainSettings,
)
from detbox.engine.sync_bn import prepare_batch_norms
from detbox.engine.tensorboard import check_tensorboard_available
from detbox.engine.time_budget import TimeBudget
from detbox.engine.train_plan import TrainPlan
from detbox.engine.training_state import (
    TrainingState,
    save_interrupt_checkpoint,
    save_training_checkpoints,
)
from detbox.engine.training_step import TrainingStep, check_grad_clip, wrap_for_training
from detbox.errors import TrainingError

__all__ = ["Trainer"]

VisualizeFn = Callable[[nn.Module], list[tuple[str, np.ndarray]]]


class Trainer:
    """Trains a detector for ``train.max_epochs`` epochs, ``train.max_iters`` iterations
    (``by_epoch=False``) or until the ``train.max_time`` budget is spent, then evaluates and
    writes a final checkpoint.

    The resumable state (model, optimizer, LR schedule, counters, loss scaler, best-metric
    history) lives in :attr:`state`, a :class:`TrainingState`; checkpoints save and restore it.

    Args:
        model: a detector with ``loss(batch) -> dict[str, Tensor]``; moved to ``device``.
        train_loader: yields :class:`ImageBatch` (``batch_size`` images per process); gets
            ``set_epoch(epoch)`` (0-based) each epoch when it or its samplers have it.
        work_dir: where logs and checkpoints go.
        optimizer_cfg: see :func:`detbox.engine.optim.build_optimizer`.
        lr_schedule_cfg: see :func:`detbox.engine.lr_schedule.build_lr_schedule`.
        train: the ``train_cfg`` settings (length in epochs, iterations or time, evaluation
            interval, clipping, accumulation, patience).
        checkpoint: the ``checkpoint`` settings (interval, rotation, best checkpoints).
        log: the ``log`` settings (interval, TensorBoard, progress bar).
        runtime: mixed precision, LR scaling by batch size, SyncBN, DDP options.
        ema: the ``ema`` settings: keep a moving average of the weights (updated after each
            optimizer step), evaluate it and save it as the checkpoints' ``state_dict``
            (see :mod:`detbox.engine.ema`); None trains without one.
        device: ``'cpu'``, ``'cuda'`` (this rank's GPU) or an explicit device.
        evaluate_fn: ``evaluate_fn(model) -> {metric: value}``, called in eval mode on every
            rank; only rank 0's result is used (distributed evaluation gathers inside it).
        visualize_fn: ``visualize_fn(model) -> [(name, (H, W, 3) uint8)]``, pictures of
            predictions logged to TensorBoard at each evaluation (rank 0 only).
        meta: JSON-able data stored in every checkpoint (config, class names, category ids).
        seed: the run's seed (rank r seeds its generators with ``seed + r``, so ranks draw
            different augmentations); None draws one, which is logged.
        deterministic: request deterministic kernels (see :func:`set_random_seed`).
    """

    def __init__(
        self,
        *,
        model: nn.Module,
        train_loader: Any,
        work_dir: str | os.PathLike,
        optimizer_cfg: Mapping[str, Any],
        lr_schedule_cfg: Mapping[str, Any] | None,
        train: TrainSettings,
        checkpoint: CheckpointSettings | None = None,
        log: LogSettings | None = None,
        runtime: RuntimeSettings | None = None,
        ema: EMASettings | None = None,
        device: str | torch.device = "cpu",
        evaluate_fn: Callable[[nn.Module], Mapping[str, float]] | None = None,
        visualize_fn: VisualizeFn | None = None,
        meta: Mapping[str, Any] | None = None,
        seed: int | None = None,
        deterministic: bool = False,
    ) -> None:
        self.train_settings = train
        self.checkpoint_settings = checkpoint or CheckpointSettings()
        self.log_settings = log or LogSettings()
        runtime = runtime or RuntimeSettings()
        self.work_dir = Path(work_dir)
        self.device = resolve_device(device)
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
        self.amp = build_amp(runtime.amp, self.device)
        if self.log_settings.tensorboard:
            check_tensorboard_available()
        ckpt = self.checkpoint_settings
        self.batches_per_epoch = loader_length(train_loader)
        self.iters_per_epoch = math.ceil(self.batches_per_epoch / train.accumulate_steps)
        self.plan = TrainPlan.from_settings(train, self.checkpoint_settings.interval,
                                            self.iters_per_epoch)
        tracker = build_tracker(ckpt.save_best, rule=ckpt.rule, max_keep=ckpt.max_keep_best,
                                patience=train.patience, has_evaluation=evaluate_fn is not None,
                                unit="epoch" if self.plan.max_epochs is not None else "iter")
        self.seed = make_seed() if seed is None else int(seed)
        set_random_seed(self.seed + get_rank(), deterministic)
        self.train_loader = train_loader
        self.state, notes = self._build_state(model, optimizer_cfg, lr_schedule_cfg, runtime,
                                              tracker, ema)
        self.training_step = TrainingStep(
            state=self.state, loss_module=self.loss_module, amp=self.amp, device=self.device,
            batches_per_epoch=self.batches_per_epoch, max_epochs=self.plan.max_epochs)
        budget = train.max_time_seconds
        self.state.budget = self.budget = TimeBudget(budget) if budget is not None else None
        self._saved_at, self._evaluated_at = 0, None
        self._last_metrics: dict[str, Any] = {}
        self.evaluate_fn = evaluate_fn
        self.visualize_fn = visualize_fn
        self.meta = dict(meta or {})
        self.last_checkpoint: Path | None = None
        self.divergence = build_divergence_monitor(train.divergence)
        self.stop_signals = StopSignals()
        self.run_log = RunLog(
            self.work_dir, self.log_settings, warnings=self.plan.warnings(), plan=self.plan,
            iters_per_epoch=self.iters_per_epoch, device=self.device, budget=self.budget,
            opening_lines=describe_run(
                model=unwrap_model(self.model), device=self.device, seed=self.seed,
                deterministic=deterministic, max_epochs=train.max_epochs,
                iters_per_epoch=self.iters_per_epoch, batches_per_epoch=self.batches_per_epoch,
                batch_per_process=loader_batch_size(train_loader),
                accumulate_steps=train.accumulate_steps, world_size=get_world_size(),
                optimizer_name=type(self.state.optimizer).__name__, work_dir=self.work_dir,
                notes=notes, length=self.plan.describe(self.batches_per_epoch)))

    @property
    def logger(self) -> TrainLogger:
        """The run's log (see :class:`~detbox.engine.run_log.RunLog`): opened on first use
        (``resume``, ``load_from`` or ``train``), closed when ``train`` returns."""
        return self.run_log.logger

    def _build_state(self, model: nn.Module, optimizer_cfg: Mapping[str, Any],
                     lr_schedule_cfg: Mapping[str, Any] | None, runtime: RuntimeSettings,
                     tracker: MetricTracker | None, ema: EMASettings | None
                     ) -> tuple[TrainingState, list[str | None]]:
        """The model on its device (SyncBN, DDP wrapper), the optimizer with the scaled lr, the
        LR schedule, the stepper and the weights' average; also returns the notes they leave
        for the log."""
        train = self.train_settings
        model, bn_note = prepare_batch_norms(model.to(self.device), self.device, runtime.sync_bn)
        cpu_note = prepare_cpu_training(model, self.device, runtime.cpu_fast_path)
        self.loss_module = wrap_for_training(model, self.device, runtime.find_unused_parameters)
        optimizer_cfg, lr_note = scale_lr(
            optimizer_cfg, runtime.auto_scale_lr,
            batch_per_process=loader_batch_size(self.train_loader),
            world_size=get_world_size(), accumulate_steps=train.accumulate_steps)
        optimizer = build_optimizer(model, optimizer_cfg)
        scheduler = build_lr_schedule(optimizer, lr_schedule_cfg,
                                      iters_per_epoch=self.iters_per_epoch,
                                      max_epochs=train.max_epochs, max_iters=train.max_iters)
        stepper = GradientStepper(
            loss_module=self.loss_module, model=model, optimizer=optimizer, amp=self.amp,
            accumulate_steps=train.accumulate_steps, grad_clip=check_grad_clip(train.grad_clip))
        state = TrainingState(model=model, optimizer=optimizer, scheduler=scheduler,
                              stepper=stepper, tracker=tracker,
                              loader_generator=loader_generator(self.train_loader),
                              ema=ModelEMA(model, ema) if ema is not None else None)
        ema_note = (f"EMA of the weights: momentum {ema.momentum:g}, gamma {ema.gamma:g}, "
                    f"buffers {ema.buffers}" if ema is not None else None)
        return state, [bn_note, cpu_note, lr_note, self.amp.describe(), ema_note]

    # ----------------------------------------------------------------- read-only views

    @property
    def model(self) -> nn.Module:
        """The detector being trained (not its DDP wrapper)."""
        return self.state.model

    @property
    def evaluated_model(self) -> nn.Module:
        """What evaluation and checkpoints use: the weights' moving average with ``ema``,
        else the trained model."""
        return self.state.ema.module if self.state.ema is not None else self.state.model

    @property
    def epoch(self) -> int:
        """Completed epochs."""
        return self.state.epoch

    @property
    def iteration(self) -> int:
        """Completed iterations (optimizer steps)."""
        return self.state.iteration

    @property
    def max_epochs(self) -> int:
        return self.train_settings.max_epochs

    # ----------------------------------------------------------------- restore

    def resume(self, path: str | os.PathLike) -> bool:
        """Continue from a training checkpoint: weights, optimizer, LR schedule, counters, RNGs,
        the loss scaler and the ``save_best`` history; a checkpoint written on an interruption
        continues at the next batch of its epoch.

        Args:
            path: a checkpoint file, or ``'auto'`` for the newest one in ``work_dir`` that
                loads (a truncated ``latest.pth`` is skipped, and the log says why).

        Returns:
            False when ``'auto'`` found no checkpoint (training starts from scratch).

        Raises:
            CheckpointError: unreadable, not a training checkpoint, or not this model's.
        """
        found = resume_state(self.state, path, work_dir=self.work_dir,
                             iters_per_epoch=self.iters_per_epoch,
                             batches_per_epoch=self.batches_per_epoch, logger=self.logger)
        if found is not None:
            self.last_checkpoint = found
        return found is not None

    def load_from(self, path: str | os.PathLike) -> LoadReport:
        """Start from another checkpoint's weights; keys whose shape differs keep their init.

        Raises:
            CheckpointError: unreadable, or not a single tensor fits the model.
        """
        return load_start_weights(self.model, path, self.logger)

    # ----------------------------------------------------------------- the loop

    @property
    def stopped_early(self) -> bool:
        return self.state.tracker is not None and self.state.tracker.should_stop

    def train(self) -> dict[str, Any]:
        """Train to the end of the plan (epochs, iterations or the time budget); returns the
        final evaluation's metrics ({} without one).

        Raises:
            TrainingError: a non-finite loss, or a non-finite gradient without fp16 loss
                scaling (the message names the iteration, the loss terms and the images).
            TrainingInterrupted: SIGINT or SIGTERM arrived; the current step finished and a
                resumable checkpoint was written.
        """
        self.run_log.start_timer(self.iteration)
        self._saved_at, self._evaluated_at = self.iteration, None
        try:
            with self.stop_signals:
                if self.budget is not None:
                    self.budget.start()
                    self.budget.tick(self.device)
                return self._run()
        except TrainingInterrupted as exc:
            self.logger.info(str(exc))
            raise
        except TrainingError as exc:
            self.logger.error(str(exc))
            raise
        finally:
            self.run_log.close()

    def _finished(self) -> bool:
        return self.plan.finished(self.epoch, self.iteration, self.budget)

    def _run(self) -> dict[str, Any]:
        if self._finished() or self.stopped_early:
            self.logger.info(f"already trained: epoch {self.epoch}, iteration {self.iteration}"
                             + (" (stopped early)" if self.stopped_early else ""))
        while not self._finished() and not self.stopped_early:
            epoch = self.epoch
            if self._train_epoch(epoch):
                self.state.epoch, self.state.epoch_batches = epoch + 1, 0
                if self.plan.by_epoch:
                    self._checkpoint_point(self.epoch)
        return self._finish()

    def _finish(self) -> dict[str, Any]:
        """The final evaluation and checkpoint, unless this iteration already had them (a
        resumed finished run only evaluates)."""
        if self.budget is not None and self.budget.expired:
            self.logger.info(f"time budget spent ({self.budget.spent:.1f} s of "
                             f"{self.budget.seconds:g} s) at iteration {self.iteration}, "
                             f"epoch {self.epoch + 1}")
        metrics, fresh = self._last_metrics, None
        if self.evaluate_fn is not None and self._evaluated_at != self.iteration:
            metrics = fresh = self._evaluate()
        if self._saved_at != self.iteration:
            unit = "epoch" if self.plan.by_epoch and not self.state.epoch_batches else "iter"
            self._save(fresh, regular=True, unit=unit)
        if self.stopped_early:
            self.logger.info(self.state.tracker.describe_stop())
        return metrics

    def _checkpoint_point(self, count: int) -> None:
        """Evaluation and checkpoints due after ``count`` units (epochs or iterations)."""
        metrics = None
        if self.evaluate_fn is not None and self.plan.val_due(count):
            metrics = self._evaluate()
        self._save(metrics, regular=self.plan.checkpoint_due(count), unit=self.plan.unit)

    def _train_epoch(self, epoch: int) -> bool:
        """Train epoch ``epoch`` (0-based) from batch ``state.epoch_batches`` (non-zero after
        resuming mid-epoch) until its end or the end of training; returns whether the epoch
        ran to its end."""
        self.model.train()
        set_loader_epoch(self.train_loader, epoch)
        start = self.state.epoch_batches
        meter = WindowMeter()
        steps = start // self.train_settings.accumulate_steps
        elapsed = data_elapsed = 0.0
        if start >= self.batches_per_epoch:  # saved after the epoch's last step
            return True
        of = f"/{self.plan.max_epochs}" if self.plan.max_epochs else ""
        bar = self.logger.progress(self.batches_per_epoch, f"epoch {epoch + 1}{of}")
        if bar is not None and start:
            bar.update(start)
        try:
            tick = time.perf_counter()
            for index, batch in enumerate(iterate_from(self.train_loader, start), start):
                data_elapsed += time.perf_counter() - tick
                values, stepped = self.training_step(batch, epoch, index, self.last_checkpoint)
                elapsed += time.perf_counter() - tick
                meter.update(values)
                lr = self.state.optimizer.param_groups[0]["lr"]
                if stepped:
                    steps += 1
                    meter.update({"time": elapsed, "data_time": data_elapsed})
                    elapsed = data_elapsed = 0.0
                    if steps % self.log_settings.interval == 0 or steps == self.iters_per_epoch:
                        self.run_log.log_step(meter.average(), lr=lr, epoch=epoch, step=steps,
                                              iteration=self.iteration,
                                              extra=self.state.stepper.log_values())
                        meter.reset()
                    done = self._step_done(index + 1)
                    self._after_step(values, lr, index + 1)
                    if done:
                        return index + 1 == self.batches_per_epoch
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{values['loss']:.4f}", lr=f"{lr:.1e}",
                                    eta=format_eta(self.run_log.eta_seconds(self.iteration)))
                tick = time.perf_counter()
        finally:
            if bar is not None:
                bar.close()
        return True

    def _step_done(self, batches_done: int) -> bool:
        """After an optimizer step: the budget's clock, evaluation and checkpoints due in
        iteration-based training; returns whether training stops here."""
        self.state.epoch_batches = batches_done
        if self.budget is not None:
            self.budget.tick(self.device)
        if not self.plan.by_epoch:
            self._checkpoint_point(self.iteration)
        return self._finished() or self.stopped_early

    def _after_step(self, values: Mapping[str, float], lr: float, batches_done: int) -> None:
        """The divergence warning, and stopping on a signal: all ranks agree on it, write a
        checkpoint that resumes at the next batch and raise TrainingInterrupted."""
        if self.divergence is not None:
            warning = self.divergence.observe(values, lr, self.iteration)
            if warning:
                self.logger.warning(warning)
        signum = self.stop_signals.agreed_signal(self.device)
        if signum is None:
            return
        self.state.epoch_batches = batches_done
        path = save_interrupt_checkpoint(self.state, work_dir=self.work_dir, meta=self.meta,
                                         last_checkpoint=self.last_checkpoint)
        raise TrainingInterrupted(
            f"{StopSignals.name(signum)} received: stopped after iteration {self.iteration} "
            f"(epoch {self.epoch + 1}, batch {batches_done}/{self.batches_per_epoch}) and wrote "
            f"{path} (also latest.pth); continue exactly from there with --resume",
            signum)

    # ----------------------------------------------------------------- checkpoints

    def _save(self, metrics: Mapping[str, Any] | None, *, regular: bool, unit: str) -> None:
        """Checkpoints at this point: the regular ``<unit>_N.pth`` when ``regular``, and a best
        one when the tracked metric of ``metrics`` ranks among the best."""
        best_file, dropped = None, []
        tracker = self.state.tracker
        if tracker is not None and metrics is not None:
            position = self.epoch if tracker.unit == "epoch" else self.iteration
            best_file, dropped = tracker.best_checkpoint(metrics, position)
        if not (regular or best_file):
            return
        paths = save_training_checkpoints(
            self.state, work_dir=self.work_dir, meta=self.meta, regular=regular,
            best_file=best_file, dropped=dropped, max_keep=self.checkpoint_settings.max_keep,
            last_checkpoint=self.last_checkpoint, unit=unit)
        if is_main_process():
            self.logger.info("saved checkpoint " + ", ".join(str(p) for p in paths))
        if regular:
            self.last_checkpoint, self._saved_at = paths[0], self.iteration

    def _evaluate(self) -> dict[str, Any]:
        draw = (self.visualize_fn if is_main_process() and self.logger.tensorboard is not None
                else None)
        metrics, images = evaluate_during_training(self.evaluated_model, self.evaluate_fn,
                                                   draw)
        if self.plan.max_epochs is not None:
            self.logger.log_val(self.epoch, metrics, step=self.iteration)
        else:  # numbered like the training records: the epoch in progress, 1-based
            epoch = self.epoch + (1 if self.state.epoch_batches else 0)
            self.logger.log_val(epoch, metrics, step=self.iteration, by_epoch=False)
        self.logger.log_images(images, self.iteration)
        self._evaluated_at, self._last_metrics = self.iteration, metrics
        return metrics
