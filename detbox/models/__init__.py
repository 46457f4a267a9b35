"""Models. Importing this package registers every component in ``MODELS`` / ``TASK_UTILS``."""

from detbox.models import (
    backbones,
    dense_heads,
    detectors,
    layers,
    losses,
    necks,
    roi_heads,
    task_modules,
)

__all__ = [
    "backbones",
    "dense_heads",
    "detectors",
    "layers",
    "losses",
    "necks",
    "roi_heads",
    "task_modules",
]
