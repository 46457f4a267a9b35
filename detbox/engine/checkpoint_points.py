"""Evaluation and checkpoints at the plan's points, at the end of training and on a stop signal.

After each epoch (``by_epoch=True``) or iteration, :class:`CheckpointPoints` evaluates when the
plan's ``val_interval`` says so, writes the regular checkpoint when ``checkpoint.interval``
does, and a best checkpoint when the evaluation ranks among the best (``save_best``). At the
end of training it evaluates and saves once more unless that iteration already had them; on a
stop signal it writes the checkpoint that resumes at the next batch. It remembers the last
regular checkpoint, which messages about non-finite weights name.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from detbox.engine.dist import is_main_process
from detbox.engine.evaluation_call import evaluate_during_training
from detbox.engine.logger import TrainLogger
from detbox.engine.run_log import RunLog
from detbox.engine.train_plan import TrainPlan
from detbox.engine.training_state import (
    TrainingState,
    save_interrupt_checkpoint,
    save_training_checkpoints,
)

__all__ = ["CheckpointPoints"]

EvaluateFn = Callable[[nn.Module], Mapping[str, float]]
VisualizeFn = Callable[[nn.Module], list[tuple[str, np.ndarray]]]


class CheckpointPoints:
    """The run's evaluations and checkpoint files.

    Args:
        state: what is evaluated and saved; also gives the position (epoch, iteration,
            batches into the epoch), the ``save_best`` tracker and the time budget.
        plan: which counts evaluate and write a regular checkpoint.
        run_log: the run's log (opened on first use).
        work_dir: where the checkpoints go.
        meta: JSON-able data stored in every checkpoint.
        max_keep: regular checkpoints kept (0 or None: all).
        evaluate_fn: ``evaluate_fn(model) -> {metric: value}``, or None to train without
            evaluation.
        visualize_fn: ``visualize_fn(model) -> [(name, (H, W, 3) uint8)]``, pictures logged
            to TensorBoard at each evaluation (rank 0 only), or None.

    Attributes:
        last_checkpoint: the newest regular checkpoint written or resumed from, or None.
    """

    def __init__(self, state: TrainingState, *, plan: TrainPlan, run_log: RunLog,
                 work_dir: str | os.PathLike, meta: Mapping[str, Any], max_keep: int | None,
                 evaluate_fn: EvaluateFn | None, visualize_fn: VisualizeFn | None) -> None:
        self.state, self.plan, self.run_log = state, plan, run_log
        self.work_dir = Path(work_dir)
        self.meta = dict(meta)
        self.max_keep = max_keep
        self.evaluate_fn = evaluate_fn
        self.visualize_fn = visualize_fn
        self.last_checkpoint: Path | None = None
        self._saved_at, self._evaluated_at = 0, None
        self._last_metrics: dict[str, Any] = {}

    @property
    def logger(self) -> TrainLogger:
        """The run's logger (opened now if it is not)."""
        return self.run_log.logger

    def start(self, iteration: int) -> None:
        """Training (re)starts at ``iteration``, whose weights are already saved (or are the
        start's): the end saves again only after a step, but evaluates in any case."""
        self._saved_at, self._evaluated_at = iteration, None

    def reached(self, count: int) -> None:
        """Evaluation and checkpoints due after ``count`` units (epochs or iterations)."""
        metrics = None
        if self.evaluate_fn is not None and self.plan.val_due(count):
            metrics = self.evaluate()
        self.save(metrics, regular=self.plan.checkpoint_due(count), unit=self.plan.unit)

    def finish(self) -> dict[str, Any]:
        """The final evaluation and checkpoint, unless this iteration already had them (a
        resumed finished run only evaluates); returns the latest evaluation's metrics."""
        state, budget = self.state, self.state.budget
        if budget is not None and budget.expired:
            self.logger.info(f"time budget spent ({budget.spent:.1f} s of "
                             f"{budget.seconds:g} s) at iteration {state.iteration}, "
                             f"epoch {state.epoch + 1}")
        metrics, fresh = self._last_metrics, None
        if self.evaluate_fn is not None and self._evaluated_at != state.iteration:
            metrics = fresh = self.evaluate()
        if self._saved_at != state.iteration:
            unit = "epoch" if self.plan.by_epoch and not state.epoch_batches else "iter"
            self.save(fresh, regular=True, unit=unit)
        if state.tracker is not None and state.tracker.should_stop:
            self.logger.info(state.tracker.describe_stop())
        return metrics

    def save(self, metrics: Mapping[str, Any] | None, *, regular: bool, unit: str) -> None:
        """Checkpoints at this point: the regular ``<unit>_N.pth`` when ``regular``, and a best
        one when the tracked metric of ``metrics`` ranks among the best."""
        state = self.state
        best_file, dropped = None, []
        tracker = state.tracker
        if tracker is not None and metrics is not None:
            position = state.epoch if tracker.unit == "epoch" else state.iteration
            best_file, dropped = tracker.best_checkpoint(metrics, position)
        if not (regular or best_file):
            return
        paths = save_training_checkpoints(
            state, work_dir=self.work_dir, meta=self.meta, regular=regular,
            best_file=best_file, dropped=dropped, max_keep=self.max_keep,
            last_checkpoint=self.last_checkpoint, unit=unit)
        if is_main_process():
            self.logger.info("saved checkpoint " + ", ".join(str(p) for p in paths))
        if regular:
            self.last_checkpoint, self._saved_at = paths[0], state.iteration

    def save_interrupted(self) -> Path:
        """Write ``iter_N.pth`` (and point ``latest.pth`` at it) so that ``--resume``
        continues at the next batch; every rank calls it."""
        return save_interrupt_checkpoint(self.state, work_dir=self.work_dir, meta=self.meta,
                                         last_checkpoint=self.last_checkpoint)

    def evaluate(self) -> dict[str, Any]:
        """Evaluate the evaluated model (see :attr:`TrainingState.evaluated_model`), log the
        metrics and the pictures; returns rank 0's metrics."""
        state = self.state
        draw = (self.visualize_fn if is_main_process() and self.logger.tensorboard is not None
                else None)
        metrics, images = evaluate_during_training(state.evaluated_model, self.evaluate_fn,
                                                   draw)
        if self.plan.max_epochs is not None:
            self.logger.log_val(state.epoch, metrics, step=state.iteration)
        else:  # numbered like the training records: the epoch in progress, 1-based
            epoch = state.epoch + (1 if state.epoch_batches else 0)
            self.logger.log_val(epoch, metrics, step=state.iteration, by_epoch=False)
        self.logger.log_images(images, state.iteration)
        self._evaluated_at, self._last_metrics = state.iteration, metrics
        return metrics
