"""Everything a run needs to continue exactly after a restart, and the files it is saved in.

:class:`TrainingState` owns the model, optimizer, LR schedule, gradient stepper (with the fp16
loss scaler), the ``save_best`` tracker and the epoch/iteration counters; its ``state_dict``
is the body of a training checkpoint and ``load_state_dict`` puts all of it back, random
states included, so a resumed run draws the same augmentations as an uninterrupted one.
:func:`save_training_checkpoints` writes the regular, latest and best files after an epoch.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from detbox.engine.best import MetricTracker
from detbox.engine.checkpoint import (
    checkpoint_name,
    link_or_copy,
    remove_old_checkpoints,
    update_latest,
    write_checkpoint,
)
from detbox.engine.checkpoint_fit import exact_fit, mismatch_message
from detbox.engine.dist import (
    all_gather_object,
    get_rank,
    get_world_size,
    is_main_process,
    unwrap_model,
)
from detbox.engine.ema import ModelEMA
from detbox.engine.gradient_stepper import GradientStepper
from detbox.engine.lr_schedule import LRSchedule
from detbox.engine.seed import get_rng_state, set_rng_state
from detbox.engine.time_budget import TimeBudget
from detbox.errors import CheckpointError, TrainingError

__all__ = [
    "TrainingState", "check_weights_finite", "save_interrupt_checkpoint",
    "save_training_checkpoints",
]

REQUIRED_KEYS = ("state_dict", "optimizer", "epoch", "iteration")


class TrainingState:
    """The resumable state of one training run.

    Args:
        model: the detector being trained (its DDP wrapper is never saved).
        optimizer: its optimizer.
        scheduler: the per-iteration LR schedule.
        stepper: the gradient stepper (holds the fp16 loss scaler).
        tracker: the ``save_best`` history, or None.
        loader_generator: the train loader's generator, whose state travels with the RNGs.
        ema: the moving average of the weights (``ema`` config section), or None.

    Attributes:
        epoch: completed epochs.
        iteration: completed iterations (optimizer steps).
        epoch_batches: loader batches already trained in epoch ``epoch + 1`` (non-zero in a
            checkpoint written mid-epoch: on an interruption, by iteration-based training or
            at the end of a time budget).
        budget: the time budget's clock (``train_cfg.max_time``), or None.
    """

    def __init__(self, *, model: nn.Module, optimizer: torch.optim.Optimizer,
                 scheduler: LRSchedule, stepper: GradientStepper,
                 tracker: MetricTracker | None = None,
                 loader_generator: torch.Generator | None = None,
                 ema: ModelEMA | None = None) -> None:
        self.model = model
        self.ema = ema
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.stepper = stepper
        self.tracker = tracker
        self.loader_generator = loader_generator
        self.epoch = 0
        self.iteration = 0
        self.epoch_batches = 0
        self.budget: TimeBudget | None = None

    @property
    def evaluated_model(self) -> nn.Module:
        """What evaluation and checkpoints use: the weights' moving average with ``ema``,
        else the trained model."""
        return self.ema.module if self.ema is not None else self.model

    def rng_state(self) -> dict[str, Any]:
        """This process's random states: Python, numpy, torch (CPU and CUDA) and the loader's."""
        state = get_rng_state()
        if self.loader_generator is not None:
            state["loader_generator"] = self.loader_generator.get_state()
        return state

    def state_dict(self, rng_states: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        """The checkpoint entries: ``state_dict``, ``optimizer``, ``scheduler``, ``epoch``,
        ``iteration``, ``epoch_batches``, ``rng`` (one state per rank), ``amp`` and ``best``,
        plus ``time_budget`` (the seconds spent) under a time budget.

        With a moving average of the weights, ``state_dict`` holds the *averaged* weights, so
        that testing, inference and ``init_detector`` use them as they are, and ``ema`` holds
        what resuming needs besides: ``{'training_state_dict': the trained weights, 'steps':
        the updates so far}``.

        Args:
            rng_states: every rank's :meth:`rng_state`; defaults to this process's alone.
        """
        extra = {"time_budget": self.budget.state_dict()} if self.budget is not None else {}
        weights = unwrap_model(self.model).state_dict()
        if self.ema is not None:
            extra["ema"] = {"training_state_dict": weights, "steps": int(self.ema.steps)}
            weights = self.ema.module.state_dict()
        return {
            "state_dict": weights,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "epoch": int(self.epoch),
            "iteration": int(self.iteration),
            "epoch_batches": int(self.epoch_batches),
            "rng": rng_states if rng_states is not None else [self.rng_state()],
            "amp": self.stepper.state_dict(),
            "best": self.tracker.state_dict() if self.tracker is not None else None,
            **extra,
        }

    def load_state_dict(self, state: dict[str, Any], source: str = "the checkpoint"
                        ) -> list[str]:
        """Put a :meth:`state_dict` (or a loaded training checkpoint) back.

        Args:
            state: the entries; ``scheduler``, ``rng``, ``amp`` and ``best`` are optional.
            source: names the checkpoint in messages (usually its path).

        Returns:
            Warnings for the log: a changed base lr, a re-targeted ``save_best``, missing or
            differently sharded random states, a moving average of the weights in only one of
            the checkpoint and the config.

        Raises:
            CheckpointError: not a training checkpoint, or not this model's or optimizer's.
        """
        for key in REQUIRED_KEYS:
            if key not in state:
                raise CheckpointError(
                    f"{source} is not a training checkpoint (no '{key}'); to start from its "
                    "weights only, use load_from / --load-from instead"
                )
        saved_ema = state.get("ema") if isinstance(state.get("ema"), dict) else None
        trained = saved_ema["training_state_dict"] if saved_ema else state["state_dict"]
        weights, report = exact_fit(self.model, trained)
        if report.skipped:
            raise CheckpointError(mismatch_message(report, source, None))
        try:
            unwrap_model(self.model).load_state_dict(weights, strict=False)
            self.optimizer.load_state_dict(state["optimizer"])
            warnings = self._load_ema(saved_ema, state["state_dict"], source)
        except (RuntimeError, ValueError, KeyError) as exc:
            raise CheckpointError(
                f"{source} does not fit this model or optimizer, so it cannot be resumed "
                f"(use load_from to fine-tune from it): {str(exc).strip()[:800]}"
            ) from exc
        warnings += self._load_schedule_and_history(state, source)
        self.epoch, self.iteration = int(state["epoch"]), int(state["iteration"])
        self.epoch_batches = int(state.get("epoch_batches", 0))
        return warnings + self._load_rng(state.get("rng"), source)

    def _load_ema(self, saved: dict[str, Any] | None, averaged: dict[str, Any], source: str
                  ) -> list[str]:
        """Put the moving average back (``averaged`` is the checkpoint's ``state_dict``);
        returns warnings when the checkpoint and the config disagree about having one."""
        if self.ema is None:
            if saved is None:
                return []
            return [f"{source} holds a moving average of the weights, but this config has no "
                    "ema section: training continues from the trained weights without it"]
        if saved is None:
            self.ema.restart_from(self.model)
            return [f"{source} has no moving average of the weights (trained without ema): "
                    "the average starts afresh from its weights"]
        self.ema.module.load_state_dict(averaged)
        self.ema.steps = int(saved["steps"])
        return []

    def _load_schedule_and_history(self, state: dict[str, Any], source: str) -> list[str]:
        warnings = []
        if "scheduler" in state:
            saved = [float(lr) for lr in state["scheduler"]["base_lrs"]]
            if saved != self.scheduler.base_lrs:
                warnings.append(
                    f"{source} trained with base lr {saved[0]:g}, this config gives "
                    f"{self.scheduler.base_lrs[0]:g} (auto_scale_lr or a changed optimizer); "
                    "the checkpoint's is kept, so the run continues as it was"
                )
            self.scheduler.load_state_dict(state["scheduler"])
        if self.budget is not None and isinstance(state.get("time_budget"), dict):
            self.budget.load_state_dict(state["time_budget"])
        if isinstance(state.get("amp"), dict):
            self.stepper.load_state_dict(state["amp"])
        best = state.get("best")
        if self.tracker is not None and isinstance(best, dict):
            if not self.tracker.load_state_dict(best):
                warnings.append(f"{source} tracked {best.get('metric')} ({best.get('rule')}); "
                                f"save_best now tracks {self.tracker.metric} afresh")
        return warnings

    def _load_rng(self, states: list[dict[str, Any]] | None, source: str) -> list[str]:
        if not states:
            return [f"{source} has no RNG state; data order may differ from the run"]
        warnings = []
        rank, world_size = get_rank(), get_world_size()
        if len(states) != world_size:
            warnings.append(
                f"{source} was saved by {len(states)} process(es), resuming with "
                f"{world_size}: random augmentation will not repeat exactly"
            )
        state = states[rank] if rank < len(states) else states[0]
        set_rng_state(state)
        if self.loader_generator is not None and "loader_generator" in state:
            self.loader_generator.set_state(state["loader_generator"])
        return warnings


def save_training_checkpoints(
    state: TrainingState,
    *,
    work_dir: str | os.PathLike,
    meta: dict[str, Any],
    regular: bool,
    best_file: str | None,
    dropped: list[str],
    max_keep: int | None,
    last_checkpoint: Path | None,
    unit: str = "epoch",
) -> list[Path]:
    """Write this epoch's (or iteration's) checkpoints; every rank calls it (the random
    states are gathered) and rank 0 writes the files.

    Args:
        state: what is saved.
        work_dir: where the files go.
        meta: JSON-able data stored in the checkpoint.
        regular: write ``epoch_N.pth``, point ``latest.pth`` at it, keep the newest
            ``max_keep`` of them and delete the ``iter_N.pth`` of an interruption; with
            ``unit='iter'`` write ``iter_N.pth`` (N completed iterations) and keep the newest
            ``max_keep`` of those.
        best_file: also write this best checkpoint (a hard link to ``epoch_N.pth`` when both
            are written).
        dropped: best checkpoints that fell out of the kept ones, to delete.
        max_keep: ``epoch_N.pth`` files kept (0 or None: all).
        last_checkpoint: the previous checkpoint, named when the weights are not finite.
        unit: ``'epoch'`` or ``'iter'``, what the regular file counts.

    Returns:
        The paths written (the same list on every rank).

    Raises:
        TrainingError: the weights hold NaN/inf; nothing is written.
    """
    check_weights_finite(state.model, state.epoch, last_checkpoint)
    rng_states = all_gather_object(state.rng_state())
    work_dir = Path(work_dir)
    count = state.epoch if unit == "epoch" else state.iteration
    paths = [work_dir / checkpoint_name(count, unit)] if regular else []
    paths += [work_dir / best_file] if best_file else []
    if is_main_process():
        write_checkpoint(paths[0], state.state_dict(rng_states), meta=meta)
        for path in paths[1:]:
            link_or_copy(paths[0], path)
        if regular:
            update_latest(work_dir, paths[0])
            remove_old_checkpoints(work_dir, max_keep, unit)
            if unit == "epoch":
                for interrupted in work_dir.glob("iter_*.pth"):  # superseded by this epoch's
                    interrupted.unlink(missing_ok=True)
        for name in dropped:
            (work_dir / name).unlink(missing_ok=True)
    return paths


def save_interrupt_checkpoint(state: TrainingState, *, work_dir: str | os.PathLike,
                              meta: dict[str, Any], last_checkpoint: Path | None) -> Path:
    """Write ``iter_N.pth`` mid-epoch (``state.epoch_batches`` says where) and point
    ``latest.pth`` at it, so ``--resume`` continues at the next batch; every rank calls it.

    Raises:
        TrainingError: the weights hold NaN/inf; nothing is written.
        CheckpointError: the disk is full; the previous checkpoints are intact.
    """
    check_weights_finite(state.model, state.epoch, last_checkpoint)
    rng_states = all_gather_object(state.rng_state())
    path = Path(work_dir) / f"iter_{state.iteration}.pth"
    if is_main_process():
        write_checkpoint(path, state.state_dict(rng_states), meta=meta)
        update_latest(work_dir, path)
    return path


def check_weights_finite(model: nn.Module, epoch: int, last_checkpoint: Any) -> None:
    """Refuse to checkpoint NaN/inf weights (e.g. from a finite loss with an inf gradient)."""
    for name, param in unwrap_model(model).named_parameters():
        if not torch.isfinite(param).all():
            raise TrainingError(
                f"parameter '{name}' holds NaN/inf after epoch {epoch}; the checkpoint was not "
                f"written, so the last one ({last_checkpoint}) stays intact"
            )
