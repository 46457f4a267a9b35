"""The log of one training run: opened on first use, the ETA and the training records.

:class:`RunLog` opens the run's :class:`~detbox.engine.logger.TrainLogger` (text, JSON lines,
console, TensorBoard) the first time something is written (``resume``, ``load_from`` or the
first step), beginning with the run's description and the plan's warnings, so a trainer that
is built and never used leaves no files and the ``detbox`` logger as it was.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from detbox.engine.logger import TrainLogger
from detbox.engine.settings import LogSettings
from detbox.engine.time_budget import TimeBudget
from detbox.engine.train_plan import TrainPlan

__all__ = ["RunLog"]


class RunLog:
    """The run's logger, opened lazily, and its per-step records.

    Args:
        work_dir: where the log files go.
        settings: the ``log`` section (progress bar, TensorBoard).
        opening_lines: info lines that open the log (the run's description).
        warnings: warning lines written after them (the plan's).
        plan: the run's length, for the ETA and the records' denominators.
        iters_per_epoch: optimizer steps per epoch.
        device: the training device (CUDA adds the peak memory to each record).
        budget: the wall-clock budget, if any (adds the progress to each record).
    """

    def __init__(self, work_dir: Path, settings: LogSettings, *, opening_lines: Sequence[str],
                 warnings: Sequence[str], plan: TrainPlan, iters_per_epoch: int,
                 device: torch.device, budget: TimeBudget | None) -> None:
        self.work_dir, self.settings = work_dir, settings
        self.opening_lines, self.warnings = list(opening_lines), list(warnings)
        self.plan, self.iters_per_epoch = plan, iters_per_epoch
        self.device, self.budget = device, budget
        self._logger: TrainLogger | None = None
        self._timer_start = (time.perf_counter(), 0)

    @property
    def logger(self) -> TrainLogger:
        """The open logger (opened now if it is not)."""
        if self._logger is None:
            self._logger = TrainLogger(self.work_dir, progress_bar=self.settings.progress_bar,
                                       tensorboard=self.settings.tensorboard)
            for line in self.opening_lines:
                self._logger.info(line)
            for warning in self.warnings:
                self._logger.warning(warning)
        return self._logger

    def close(self) -> None:
        """Close the logger if it is open; the next write opens a new one."""
        if self._logger is not None:
            self._logger.close()
            self._logger = None

    def start_timer(self, iteration: int) -> None:
        """The ETA counts this run's speed from here (``iteration`` steps already done)."""
        self._timer_start = (time.perf_counter(), iteration)

    def eta_seconds(self, iteration: int) -> float:
        """Time left for the whole run at this run's average speed so far (NaN at first)."""
        started, start_iteration = self._timer_start
        done = iteration - start_iteration
        per_iter = (time.perf_counter() - started) / done if done else math.nan
        return self.plan.seconds_left(iteration, per_iter, self.budget)

    def log_step(self, averages: Mapping[str, float], *, lr: float, epoch: int, step: int,
                 iteration: int, extra: Mapping[str, Any]) -> None:
        """One training record: ``averages`` over the window, the lr, the position (``epoch``
        0-based, ``step`` in the epoch, ``iteration`` overall), the ETA and ``extra`` values
        (the stepper's gradient norm, loss scale)."""
        record: dict[str, Any] = {
            "epoch": epoch + 1,
            "iter": step,
            "step": iteration,
            "lr": lr,
            "eta_seconds": self.eta_seconds(iteration),
            **averages,
            **extra,
        }
        if self.budget is not None:
            record["progress"] = round(self.budget.progress, 4)
        if self.device.type == "cuda":
            record["memory_mb"] = round(torch.cuda.max_memory_allocated(self.device) / 2**20)
            torch.cuda.reset_peak_memory_stats(self.device)
        max_iters = None if self.plan.by_epoch else self.plan.max_iters
        self.logger.log_train(record, self.plan.max_epochs, self.iters_per_epoch, max_iters)
