"""Stopping training cleanly on SIGINT (Ctrl-C) or SIGTERM (e.g. a SLURM preemption).

The first signal only sets a flag: the trainer finishes the current optimizer step, writes a
resumable checkpoint and raises :class:`TrainingInterrupted`, which the command line turns into
exit code 130 (SIGINT) or 143 (SIGTERM). A second Ctrl-C raises ``KeyboardInterrupt`` at once.
Under ``torch.distributed`` the ranks agree on the flag each step (an all-reduce), so a signal
seen by one rank stops every rank at the same iteration.
"""

from __future__ import annotations

import os
import signal
import threading
from types import FrameType
from typing import Any

import torch

from detbox.engine.dist import get_world_size
from detbox.errors import TrainingError

__all__ = ["StopSignals", "TrainingInterrupted"]

HANDLED = (signal.SIGINT, signal.SIGTERM)


class TrainingInterrupted(TrainingError):
    """Training stopped on a signal after writing a resumable checkpoint.

    Attributes:
        signum: the signal received (on this rank, or on another one).
        exit_code: ``128 + signum``, the shell's code for death by that signal.
    """

    def __init__(self, message: str, signum: int) -> None:
        super().__init__(message)
        self.signum = signum
        self.exit_code = 128 + signum


class StopSignals:
    """Catches SIGINT and SIGTERM while training runs (a context manager).

    Outside the main thread signal handlers cannot be installed; the flag then stays unset
    and signals keep their usual effect.
    """

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for signum in HANDLED:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc_info: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt("second Ctrl-C: stopped at once, without a checkpoint")
        self.signum = signum
        again = " (Ctrl-C again to stop at once)" if signum == signal.SIGINT else ""
        # os.write: print() could re-enter a stream the interrupted code is writing to.
        os.write(2, f"{self.name(signum)} received: stopping after the current step and writing "
                    f"a checkpoint{again}\n".encode())

    def agreed_signal(self, device: torch.device) -> int | None:
        """The signal any rank received (all ranks call this at the same step), or None."""
        if get_world_size() == 1:
            return self.signum
        flag = torch.tensor([self.signum or 0], dtype=torch.int64, device=device)
        torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
        return int(flag.item()) or None

    @staticmethod
    def name(signum: int) -> str:
        return signal.Signals(signum).name
