"""Iteration-level learning-rate schedules configured in epochs.

Detection schedules are written in epochs ("drop at epochs 8 and 11 of 12") but applied every
iteration, so warmup and cosine decay are smooth. The LR at an iteration is a pure function of
that iteration (:meth:`LRSchedule.lr_at`), which keeps the schedule testable and makes resuming
trivial: the trainer only needs to know which iteration it is at.

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
        max_epochs: length of training, for cosine decay.
        policy: ``'step'`` (multiply by ``gamma`` at each milestone), ``'cosine'`` (half a cosine
            from the base LR down to ``base * min_lr_ratio`` at the last iteration) or
            ``'constant'``.
        milestones: epochs after which the step policy multiplies the LR by ``gamma``: with
            ``[8, 11]`` the LR drops at the first iteration of the 9th and the 12th epoch.
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
        max_epochs: int,
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
        if iters_per_epoch < 1 or max_epochs < 1:
            raise ConfigError(
                f"lr_schedule needs iters_per_epoch >= 1 and max_epochs >= 1, "
                f"got {iters_per_epoch} and {max_epochs}"
            )
        milestones = [int(m) for m in milestones]
        if milestones != sorted(milestones) or any(m < 1 for m in milestones):
            raise ConfigError(
                f"lr_schedule milestones must be increasing epochs >= 1: {milestones}")
        self.optimizer = optimizer
        self.iters_per_epoch = int(iters_per_epoch)
        self.max_epochs = int(max_epochs)
        self.policy = policy
        self.milestones = milestones
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
        return self.iters_per_epoch * self.max_epochs

    def factor_at(self, iteration: int) -> float:
        """The multiplier of the base LR at 0-based global ``iteration``."""
        if self.policy == "step":
            passed = sum(iteration >= m * self.iters_per_epoch for m in self.milestones)
            factor = self.gamma**passed
        elif self.policy == "cosine":
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

    def lr_at(self, iteration: int, group: int = 0) -> float:
        """The LR of param group ``group`` at 0-based global ``iteration``; changes nothing."""
        return self.base_lrs[group] * self.factor_at(iteration)

    def apply(self, iteration: int) -> float:
        """Set every group's LR for ``iteration`` and return group 0's."""
        factor = self.factor_at(iteration)
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
    max_epochs: int,
) -> LRSchedule:
    """Build an :class:`LRSchedule` from ``cfg``; missing keys (or None) take the defaults.

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
    return LRSchedule(optimizer, iters_per_epoch=iters_per_epoch, max_epochs=max_epochs, **cfg)
