"""Iteration-level learning-rate schedules configured in epochs or in iterations.

Detection schedules are written in epochs ("drop at epochs 8 and 11 of 12") or, for
iteration-based training (``train_cfg.by_epoch=False``), in iterations ("drop at 60k and 80k of
90k"), and applied every iteration, so warmup and cosine decay are smooth. The LR at an
iteration is a pure function of that iteration (:meth:`LRSchedule.lr_at`), which keeps the
schedule testable and makes resuming trivial: the trainer only needs to know which iteration it
is at.

Under a time budget (``train_cfg.max_time``) the schedule is laid over the budget instead: the
trainer passes the spent fraction of the budget as ``progress``, milestones keep their place as
a fraction of the configured length (``[8, 11]`` of 12 epochs drop at 8/12 and 11/12 of the
budget) and cosine decay follows ``progress``. Warmup stays counted in iterations: its first
``warmup_iters`` steps stabilise the start whatever the budget.

Each optimizer param group keeps its own base LR (``initial_lr``) and is scaled by the same
factor, so groups with different base LRs keep their ratio.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Annotated, Any

import torch

from detbox.errors import ConfigError
from detbox.registry import closest_match
from detbox.typecheck import NonNegative, Positive, Range, check_values

__all__ = ["LRSchedule", "build_lr_schedule"]

_POLICIES = ("step", "cosine", "constant")
_WARMUPS = ("linear", "constant", None)


class LRSchedule:
    """Sets the learning rate of an optimizer's param groups at every iteration.

    Args:
        optimizer: the optimizer whose groups' ``lr`` is set; a group's base LR is its
            ``initial_lr`` when present (after a resume) or else its current ``lr``.
        iters_per_epoch: iterations in one epoch (``len(train_loader)``).
        max_epochs: length of training in epochs; milestones then count epochs.
        max_iters: length of training in iterations, instead of ``max_epochs``; milestones
            then count iterations (``train_cfg.by_epoch=False``).
        policy: ``'step'`` (multiply by ``gamma`` at each milestone), ``'cosine'`` (half a cosine
            from the base LR down to ``base * min_lr_ratio`` at the last iteration) or
            ``'constant'``.
        milestones: epochs (or iterations, with ``max_iters``) after which the step policy
            multiplies the LR by ``gamma``: with ``[8, 11]`` epochs the LR drops at the first
            iteration of the 9th and the 12th epoch; with ``[60000, 80000]`` iterations at
            0-based iterations 60000 and 80000.
        gamma: the step policy's factor.
        min_lr_ratio: the cosine policy's final LR as a fraction of the base LR.
        warmup: ``'linear'`` (ramp from ``warmup_ratio`` to 1), ``'constant'`` (hold at
            ``warmup_ratio``) or None. Warmup scales the regular schedule.
        warmup_iters: iterations of warmup.
        warmup_ratio: the warmup's starting factor.
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        *,
        iters_per_epoch: int,
        max_epochs: int | None = None,
        max_iters: int | None = None,
        policy: str = "step",
        milestones: list[int] | tuple[int, ...] = (),
        gamma: Annotated[float, Positive] = 0.1,
        min_lr_ratio: Annotated[float, Range(ge=0, le=1)] = 0.0,
        warmup: str | None = "linear",
        warmup_iters: Annotated[int, NonNegative] = 500,
        warmup_ratio: Annotated[float, Range(gt=0, le=1)] = 0.001,
    ) -> None:
        _check_choice("policy", policy, _POLICIES)
        _check_choice("warmup", warmup, _WARMUPS)
        if (max_epochs is None) == (max_iters is None):
            raise ConfigError("lr_schedule needs the length of training as max_epochs or as "
                              f"max_iters, one of them; got {max_epochs} and {max_iters}")
        length = max_epochs if max_iters is None else max_iters
        if iters_per_epoch < 1 or length < 1:
            raise ConfigError(
                f"lr_schedule needs iters_per_epoch >= 1 and a length >= 1, "
                f"got {iters_per_epoch} and {length}"
            )
        unit = "epochs" if max_iters is None else "iterations"
        milestones = [int(m) for m in milestones]
        if milestones != sorted(milestones) or any(m < 1 for m in milestones):
            raise ConfigError(
                f"lr_schedule milestones must be increasing {unit} >= 1: {milestones}")
        self.optimizer = optimizer
        self.iters_per_epoch = int(iters_per_epoch)
        self.by_epoch = max_iters is None
        self.max_epochs = int(max_epochs) if self.by_epoch else None
        self._max_iters = int(length) * (self.iters_per_epoch if self.by_epoch else 1)
        self.policy = policy
        self.milestones = milestones
        self.milestone_iters = [m * (self.iters_per_epoch if self.by_epoch else 1)
                                for m in milestones]
        self.gamma = float(gamma)
        self.min_lr_ratio = float(min_lr_ratio)
        self.warmup = warmup
        self.warmup_iters = int(warmup_iters) if warmup else 0
        self.warmup_ratio = float(warmup_ratio)
        for group in optimizer.param_groups:
            group.setdefault("initial_lr", group["lr"])
        self.base_lrs = [float(group["initial_lr"]) for group in optimizer.param_groups]
        self.last_iteration = -1

    @property
    def max_iters(self) -> int:
        """The configured length in iterations."""
        return self._max_iters

    def factor_at(self, iteration: int, progress: float | None = None) -> float:
        """The multiplier of the base LR at 0-based global ``iteration``.

        Args:
            iteration: completed iterations; it counts the warmup.
            progress: the fraction of a time budget spent, in [0, 1], which then places the
                step milestones and the cosine decay; None follows ``iteration`` over the
                configured length.
        """
        if progress is not None:
            progress = min(max(float(progress), 0.0), 1.0)
        if self.policy == "step":
            if progress is None:
                passed = sum(iteration >= m for m in self.milestone_iters)
            else:
                passed = sum(progress >= m / self.max_iters for m in self.milestone_iters)
            factor = self.gamma**passed
        elif self.policy == "cosine":
            if progress is None:
                progress = min(iteration / max(self.max_iters - 1, 1), 1.0)
            cosine = 0.5 * (1.0 + math.cos(math.pi * progress))
            factor = self.min_lr_ratio + (1.0 - self.min_lr_ratio) * cosine
        else:
            factor = 1.0
        if iteration < self.warmup_iters:
            if self.warmup == "linear":
                ramp = iteration / self.warmup_iters
                factor *= self.warmup_ratio + (1.0 - self.warmup_ratio) * ramp
            else:
                factor *= self.warmup_ratio
        return factor

    def lr_at(self, iteration: int, group: int = 0, progress: float | None = None) -> float:
        """The LR of param group ``group`` at 0-based global ``iteration`` (and budget
        ``progress``, see :meth:`factor_at`); changes nothing."""
        return self.base_lrs[group] * self.factor_at(iteration, progress)

    def apply(self, iteration: int, progress: float | None = None) -> float:
        """Set every group's LR for ``iteration`` (and budget ``progress``) and return group
        0's."""
        factor = self.factor_at(iteration, progress)
        for group, base_lr in zip(self.optimizer.param_groups, self.base_lrs):
            group["lr"] = base_lr * factor
        self.last_iteration = iteration
        return self.base_lrs[0] * factor

    def state_dict(self) -> dict[str, Any]:
        return {
            "last_iteration": self.last_iteration,
            "base_lrs": list(self.base_lrs),
            "iters_per_epoch": self.iters_per_epoch,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore the base LRs and position; the policy itself comes from the config."""
        self.base_lrs = [float(lr) for lr in state["base_lrs"]]
        self.last_iteration = int(state["last_iteration"])
        for group, base_lr in zip(self.optimizer.param_groups, self.base_lrs):
            group["initial_lr"] = base_lr


def _check_choice(key: str, value: Any, choices: tuple) -> None:
    if value not in choices:
        names = [c for c in choices if c is not None]
        match = closest_match(str(value), names)
        hint = f" Did you mean '{match}'?" if match else ""
        raise ConfigError(
            f"lr_schedule {key} {value!r} is not supported.{hint} Choose from: {choices}"
        )


def build_lr_schedule(
    optimizer: torch.optim.Optimizer,
    cfg: Mapping[str, Any] | None,
    *,
    iters_per_epoch: int,
    max_epochs: int | None = None,
    max_iters: int | None = None,
) -> LRSchedule:
    """Build an :class:`LRSchedule` from ``cfg``; missing keys (or None) take the defaults.

    The length is ``max_epochs`` (milestones count epochs) or ``max_iters`` (milestones count
    iterations, for ``train_cfg.by_epoch=False``).

    The defaults are a linear warmup over 500 iterations from 0.001 x the LR, then a constant
    LR (the step policy without milestones).


    Raises:
        ConfigError: an unknown key (naming the closest valid one) or value.
    """
    cfg = dict(cfg or {})
    accepted = [
        "policy", "milestones", "gamma", "min_lr_ratio", "warmup", "warmup_iters", "warmup_ratio",
    ]
    for key in cfg:
        if key not in accepted:
            match = closest_match(key, accepted)
            hint = f" Did you mean '{match}'?" if match else ""
            raise ConfigError(
                f"lr_schedule got an unknown key '{key}'.{hint} Valid keys: {', '.join(accepted)}"
            )
    check_values(LRSchedule, cfg, "lr_schedule", path="lr_schedule")
    return LRSchedule(optimizer, iters_per_epoch=iters_per_epoch, max_epochs=max_epochs,
                      max_iters=max_iters, **cfg)
