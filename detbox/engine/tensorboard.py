"""TensorBoard event files beside the text and JSON-lines logs (``log=dict(tensorboard=True)``).

The ``tensorboard`` package is optional (``pip install 'detbox[tensorboard]'``) and imported
only when asked for. Scalars go under ``train/`` (losses, lr, timings) and ``val/`` (metrics),
all against the global iteration so training and evaluation curves share one axis; pictures of
predictions go under ``val_images/``.
"""

from __future__ import annotations

import importlib.util
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from detbox.errors import ConfigError

__all__ = ["TensorBoardWriter", "check_tensorboard_available"]

_SKIPPED_KEYS = ("mode", "epoch", "iter", "step", "eta_seconds")


_MISSING = ("log.tensorboard=True needs the tensorboard package: pip install "
            "'detbox[tensorboard]' (or pip install tensorboard)")


def check_tensorboard_available() -> None:
    """Fail early, on every rank, when TensorBoard logging is asked for but not installed.

    Raises:
        ConfigError: the ``tensorboard`` package is missing.
    """
    if importlib.util.find_spec("tensorboard") is None:
        raise ConfigError(_MISSING)


class TensorBoardWriter:
    """Writes one run's scalars and images to ``log_dir``.

    Raises:
        ConfigError: the ``tensorboard`` package is not installed.
    """

    def __init__(self, log_dir: str | os.PathLike) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as exc:
            raise ConfigError(_MISSING) from exc
        self.log_dir = Path(log_dir)
        self._writer = SummaryWriter(log_dir=str(self.log_dir))

    def add_scalars(self, prefix: str, values: Mapping[str, Any], step: int) -> None:
        """Each finite number of ``values`` as ``prefix/key``; other values are skipped."""
        for key, value in values.items():
            if key in _SKIPPED_KEYS or isinstance(value, bool):
                continue
            if isinstance(value, (int, float)) and math.isfinite(value):
                self._writer.add_scalar(f"{prefix}/{key}", float(value), step)

    def add_images(self, prefix: str, images: Sequence[tuple[str, np.ndarray]], step: int
                   ) -> None:
        """``(name, (H, W, 3) uint8 RGB)`` pictures as ``prefix/name``."""
        for name, image in images:
            self._writer.add_image(f"{prefix}/{name}", np.asarray(image), step,
                                   dataformats="HWC")

    def flush(self) -> None:
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()
