"""A wall-clock training budget (``train_cfg.max_time``, ``detbox train --max-time``).

With a budget, training ends when the time spent training reaches it, however many epochs or
iterations that is; the learning-rate schedule is laid over the budget, its progress being the
elapsed fraction of the budget measured at each iteration. The time spent so far travels in
every checkpoint, so a resumed run spends what was left of its budget.

Under ``torch.distributed`` rank 0's clock decides: every rank receives its elapsed time at
each iteration, so all ranks use the same learning rate and stop at the same iteration.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Mapping
from typing import Any

import torch

from detbox.engine.dist import get_world_size
from detbox.errors import ConfigError

__all__ = ["TimeBudget", "format_duration", "parse_duration"]

_PART = r"(?:(\d+(?:\.\d+)?)\s*{unit})?"
_DURATION = re.compile(r"^\s*" + r"\s*".join(_PART.format(unit=u) for u in "hms") + r"\s*$")
DURATION_WORDS = "a duration such as '20m', '90s', '1h30m' or a number of seconds > 0"


def parse_duration(value: Any, key: str = "train_cfg.max_time") -> float:
    """Seconds in ``value``: a number of seconds, or a string of hours, minutes and seconds.

    ``'20m'`` is 1200, ``'90s'`` 90, ``'1h30m'`` 5400, ``'1.5h'`` 5400, ``'45'`` 45.

    Raises:
        ConfigError: anything else, or a duration that is not positive (naming ``key``).
    """
    seconds = None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip().lower()
        match = _DURATION.match(text)
        if re.fullmatch(r"\d+(?:\.\d+)?", text):
            seconds = float(text)
        elif match and any(match.groups()):
            hours, minutes, secs = (float(g) if g else 0.0 for g in match.groups())
            seconds = hours * 3600 + minutes * 60 + secs
    if seconds is None or not math.isfinite(seconds) or seconds <= 0:
        raise ConfigError(f"{key} must be {DURATION_WORDS}, got {value!r}")
    return seconds


def format_duration(seconds: float) -> str:
    """``5400`` -> ``'1h30m'``, ``90`` -> ``'1m30s'``, ``2.5`` -> ``'2.5s'``."""
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    secs += seconds - whole
    parts = [f"{hours}h" if hours else "", f"{minutes}m" if minutes else "",
             f"{secs:g}s" if secs or not (hours or minutes) else ""]
    return "".join(parts)


class TimeBudget:
    """The training clock of a run with a budget.

    Args:
        seconds: the budget.
        spent: seconds already spent training (restored from a checkpoint).

    The time counted is the time between :meth:`start` and the last :meth:`tick` (the
    trainer ticks after every optimizer step), so neither the final evaluation nor the time
    between a checkpoint and its resume counts.
    """

    def __init__(self, seconds: float, spent: float = 0.0) -> None:
        self.seconds = float(seconds)
        self.spent = float(spent)
        self._started: float | None = None
        self._spent_at_start = self.spent

    def start(self) -> None:
        """Start (or restart) counting from now, on top of the time already spent."""
        self._started = time.perf_counter()
        self._spent_at_start = self.spent

    def tick(self, device: torch.device | None = None) -> float:
        """Measure the time spent now (rank 0's, under torch.distributed) and return it."""
        if self._started is not None:
            self.spent = self._spent_at_start + time.perf_counter() - self._started
        if get_world_size() > 1:
            value = torch.tensor([self.spent], dtype=torch.float64, device=device)
            torch.distributed.broadcast(value, src=0)
            self.spent = float(value.item())
        return self.spent

    @property
    def progress(self) -> float:
        """The fraction of the budget spent at the last :meth:`tick`, at most 1."""
        return min(self.spent / self.seconds, 1.0)

    @property
    def expired(self) -> bool:
        return self.spent >= self.seconds

    @property
    def remaining(self) -> float:
        return max(self.seconds - self.spent, 0.0)

    def state_dict(self) -> dict[str, float]:
        return {"seconds": self.seconds, "spent": self.spent}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Take the time already spent; the budget itself comes from the config."""
        self.spent = self._spent_at_start = float(state["spent"])
