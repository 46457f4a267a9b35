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
either way, so the sampler's shuffling still follows the epoch. What happens at those points
(evaluation, the regular and best checkpoints, the final ones) is :class:`CheckpointPoints`';
building the state the loop trains is :func:`build_training_state`'s.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from detbox.engine.amp import build_amp
from detbox.engine.best import build_tracker
from detbox.engine.checkpoint import LoadReport
from detbox.engine.checkpoint_points import CheckpointPoints, EvaluateFn, VisualizeFn
from detbox.engine.dist import get_rank, get_world_size, resolve_device, unwrap_model
from detbox.engine.divergence import build_divergence_monitor
from detbox.engine.interrupt import StopSignals, TrainingInterrupted
from detbox.engine.loader_info import (
    iterate_from,
    loader_batch_size,
    loader_length,
    set_loader_epoch,
)
from detbox.engine.logger import TrainLogger, WindowMeter, describe_run, format_eta
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
from detbox.engine.tensorboard import check_tensorboard_available
from detbox.engine.time_budget import TimeBudget
from detbox.engine.train_plan import TrainPlan
from detbox.engine.training_setup import build_training_state
from detbox.engine.training_step import TrainingStep
from detbox.errors import TrainingError

__all__ = ["Trainer"]


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
        evaluate_fn: EvaluateFn | None = None,
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
        self.state, self.loss_module, notes = build_training_state(
            model, train_loader=train_loader, device=self.device, amp=self.amp,
            optimizer_cfg=optimizer_cfg, lr_schedule_cfg=lr_schedule_cfg, train=train,
            runtime=runtime, tracker=tracker, ema=ema, iters_per_epoch=self.iters_per_epoch)
        self.training_step = TrainingStep(
            state=self.state, loss_module=self.loss_module, amp=self.amp, device=self.device,
            batches_per_epoch=self.batches_per_epoch, max_epochs=self.plan.max_epochs)
        budget = train.max_time_seconds
        self.state.budget = self.budget = TimeBudget(budget) if budget is not None else None
        self.divergence = build_divergence_monitor(train.divergence)
        self.stop_signals = StopSignals()
        self.run_log = self._build_run_log(notes, deterministic)
        self.checkpoint_points = CheckpointPoints(
            self.state, plan=self.plan, run_log=self.run_log, work_dir=self.work_dir,
            meta=meta or {}, max_keep=ckpt.max_keep, evaluate_fn=evaluate_fn,
            visualize_fn=visualize_fn)

    def _build_run_log(self, notes: list[str | None], deterministic: bool) -> RunLog:
        """The run's log (opened on first use), which begins with the run's description
        (model, device, seed, batch, length, ``notes`` on the state's construction) and the
        plan's warnings."""
        train = self.train_settings
        return RunLog(
            self.work_dir, self.log_settings, warnings=self.plan.warnings(), plan=self.plan,
            iters_per_epoch=self.iters_per_epoch, device=self.device, budget=self.budget,
            opening_lines=describe_run(
                model=unwrap_model(self.model), device=self.device, seed=self.seed,
                deterministic=deterministic, max_epochs=train.max_epochs,
                iters_per_epoch=self.iters_per_epoch, batches_per_epoch=self.batches_per_epoch,
                batch_per_process=loader_batch_size(self.train_loader),
                accumulate_steps=train.accumulate_steps, world_size=get_world_size(),
                optimizer_name=type(self.state.optimizer).__name__, work_dir=self.work_dir,
                notes=notes, length=self.plan.describe(self.batches_per_epoch)))

    @property
    def logger(self) -> TrainLogger:
        """The run's log (see :class:`~detbox.engine.run_log.RunLog`): opened on first use
        (``resume``, ``load_from`` or ``train``), closed when ``train`` returns."""
        return self.run_log.logger

    # ----------------------------------------------------------------- read-only views

    @property
    def model(self) -> nn.Module:
        """The detector being trained (not its DDP wrapper)."""
        return self.state.model

    @property
    def evaluated_model(self) -> nn.Module:
        """What evaluation and checkpoints use: the weights' moving average with ``ema``,
        else the trained model."""
        return self.state.evaluated_model

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

    @property
    def last_checkpoint(self) -> Path | None:
        """The newest regular checkpoint written or resumed from, or None."""
        return self.checkpoint_points.last_checkpoint

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
            self.checkpoint_points.last_checkpoint = found
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
        self.checkpoint_points.start(self.iteration)
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
                    self.checkpoint_points.reached(self.epoch)
        return self.checkpoint_points.finish()

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
            self.checkpoint_points.reached(self.iteration)
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
        path = self.checkpoint_points.save_interrupted()
        raise TrainingInterrupted(
            f"{StopSignals.name(signum)} received: stopped after iteration {self.iteration} "
            f"(epoch {self.epoch + 1}, batch {batches_done}/{self.batches_per_epoch}) and wrote "
            f"{path} (also latest.pth); continue exactly from there with --resume",
            signum)
