"""Warning about a loss that explodes while still finite (``train_cfg.divergence``).

A non-finite loss stops training (see :mod:`detbox.engine.training_step`); a loss that grows a
hundredfold usually comes first, and the run wastes hours before it turns NaN. The monitor
compares each step's total loss with the median of the last ``window`` normal steps and warns
when it exceeds ``factor`` times that median for ``patience`` consecutive steps.
"""

from __future__ import annotations

import statistics
from collections import deque
from collections.abc import Mapping
from typing import Any

__all__ = ["DEFAULTS", "DivergenceMonitor", "build_divergence_monitor"]

DEFAULTS = {"factor": 100.0, "window": 50, "patience": 3}


class DivergenceMonitor:
    """Watches the total loss step by step.

    Args:
        factor: a step is exploding when its loss exceeds ``factor`` x the running median.
        window: the median is over this many recent normal steps (it needs that many first).
        patience: warn after this many consecutive exploding steps (once per streak).
    """

    def __init__(self, *, factor: float, window: int, patience: int) -> None:
        self.factor, self.window, self.patience = float(factor), int(window), int(patience)
        self.history: deque[float] = deque(maxlen=self.window)
        self.streak = 0

    def observe(self, values: Mapping[str, float], lr: float, iteration: int) -> str | None:
        """Record one optimizer step's logged values; return a warning when the loss explodes.

        Args:
            values: the step's values (``'loss'`` and the ``loss_*`` terms).
            lr: the current learning rate.
            iteration: the 1-based iteration just done.
        """
        loss = float(values["loss"])
        median = statistics.median(self.history) if len(self.history) == self.window else None
        if median is None or median <= 0 or loss <= self.factor * median:
            self.streak = 0
            self.history.append(loss)
            return None
        self.streak += 1
        if self.streak != self.patience:
            return None
        terms = ", ".join(f"{k}={float(v):.4g}" for k, v in values.items()
                          if k.startswith("loss"))
        return (
            f"the loss is exploding: above {self.factor:g}x its median of the last "
            f"{self.window} steps ({median:.4g}) for {self.patience} steps in a row, at "
            f"iteration {iteration} ({terms}; lr={lr:.4g}). Try a lower lr (optimizer.lr), a "
            "longer warmup or gradient clipping (train_cfg.grad_clip=dict(max_norm=35))"
        )


def build_divergence_monitor(setting: Mapping[str, Any] | bool) -> DivergenceMonitor | None:
    """The monitor for ``train_cfg.divergence``: True (the defaults), False (off) or a dict
    overriding ``factor``, ``window`` and ``patience`` (checked by ``TrainSettings``)."""
    if setting is False:
        return None
    options = dict(DEFAULTS)
    if isinstance(setting, Mapping):
        options.update(setting)
    return DivergenceMonitor(**options)
