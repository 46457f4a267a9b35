"""How long a run trains, and when it evaluates and writes checkpoints.

Three ways to say how long: epochs (``train_cfg.max_epochs``, the default), iterations
(``by_epoch=False, max_iters=N``, as Detectron2's ``SOLVER.MAX_ITER``) and a wall-clock
budget (``max_time``), which replaces either length. Intervals (``val_interval``,
``checkpoint.interval``) count the plan's unit; the data is iterated epoch after epoch in
every case (the sampler's shuffling follows the epoch), but with iterations or a budget an
epoch boundary ends nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from detbox.engine.settings import TrainSettings
from detbox.engine.time_budget import TimeBudget, format_duration

__all__ = ["TrainPlan"]


@dataclass(frozen=True)
class TrainPlan:
    """The length and the intervals of a run.

    Attributes:
        by_epoch: count in epochs (else in iterations, i.e. optimizer steps).
        iters_per_epoch: iterations in one epoch.
        length: the configured length in the plan's unit (the milestones' reference under a
            budget).
        val_interval: evaluate every this many units (0: only at the end).
        checkpoint_interval: write a checkpoint every this many units (0: only at the end).
        budget_seconds: the time budget, or None for a fixed length.
    """

    by_epoch: bool
    iters_per_epoch: int
    length: int
    val_interval: int = 1
    checkpoint_interval: int = 1
    budget_seconds: float | None = None

    @classmethod
    def from_settings(cls, train: TrainSettings, checkpoint_interval: int,
                      iters_per_epoch: int) -> TrainPlan:
        length = train.max_epochs if train.by_epoch else train.max_iters
        return cls(by_epoch=train.by_epoch, iters_per_epoch=iters_per_epoch, length=int(length),
                   val_interval=train.val_interval, checkpoint_interval=checkpoint_interval,
                   budget_seconds=train.max_time_seconds)

    @property
    def unit(self) -> str:
        """``'epoch'`` or ``'iter'``: what intervals and checkpoint names count."""
        return "epoch" if self.by_epoch else "iter"

    @property
    def max_epochs(self) -> int | None:
        """The length in epochs when it is one (not under a budget or by iterations)."""
        return self.length if self.by_epoch and self.budget_seconds is None else None

    @property
    def max_iters(self) -> int:
        """The configured length in iterations (nominal under a budget)."""
        return self.length * (self.iters_per_epoch if self.by_epoch else 1)

    def count(self, epoch: int, iteration: int) -> int:
        """The position in the plan's unit."""
        return epoch if self.by_epoch else iteration

    def finished(self, epoch: int, iteration: int, budget: TimeBudget | None) -> bool:
        """Whether training is over: the budget is spent, or the length is reached."""
        if budget is not None:
            return budget.expired
        return self.count(epoch, iteration) >= self.length

    def _due(self, count: int, interval: int) -> bool:
        at_end = self.budget_seconds is None and count >= self.length
        return at_end or (interval > 0 and count > 0 and count % interval == 0)

    def val_due(self, count: int) -> bool:
        """Whether an evaluation is due after ``count`` units (the end of a fixed length
        included; the end of a budget is handled by the trainer)."""
        return self._due(count, self.val_interval)

    def checkpoint_due(self, count: int) -> bool:
        """Whether a regular checkpoint is due after ``count`` units."""
        return self._due(count, self.checkpoint_interval)

    def seconds_left(self, iteration: int, seconds_per_iteration: float,
                     budget: TimeBudget | None) -> float:
        """The ETA: what is left of the budget, or of the length at the given speed."""
        if budget is not None:
            return budget.remaining
        return seconds_per_iteration * (self.max_iters - iteration)

    def warnings(self) -> list[str]:
        """Intervals of 1 under ``by_epoch=False``: the epoch defaults carried over by mistake
        would evaluate or checkpoint after every single iteration."""
        if self.by_epoch or self.length <= 1:
            return []
        found = []
        for key, interval in (("train_cfg.val_interval", self.val_interval),
                              ("checkpoint.interval", self.checkpoint_interval)):
            if interval == 1:
                found.append(f"{key}=1 counts iterations with train_cfg.by_epoch=False: after "
                             f"every iteration; give it in iterations (e.g. "
                             f"{max(self.length // 10, 1)}) or 0 (only at the end)")
        return found

    def describe(self, batches_per_epoch: int) -> str:
        """The log's opening words about the length, e.g. ``training 12 epochs x 500
        iterations (500 batches per epoch)``."""
        per_epoch = f"{self.iters_per_epoch} iterations per epoch ({batches_per_epoch} batches)"
        if self.budget_seconds is not None:
            nominal = (f"{self.length} epochs" if self.by_epoch else f"{self.length} iterations")
            return (f"training for a time budget of {format_duration(self.budget_seconds)} "
                    f"(LR schedule laid over it; milestones placed as in {nominal}), "
                    f"{per_epoch}, intervals in {self.unit}s")
        if self.by_epoch:
            return (f"training {self.length} epochs x {self.iters_per_epoch} iterations "
                    f"({batches_per_epoch} batches per epoch)")
        return f"training {self.length} iterations, {per_epoch}"
