"""Where a training run starts: resuming a checkpoint (``--resume``) or loading weights
(``--load-from``).

``--resume auto`` takes the newest checkpoint in the work dir that loads: a ``latest.pth``
truncated by a full disk or a kill mid-copy is skipped, with the reason logged, for the newest
``epoch_N.pth``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from torch import nn

from detbox.engine.checkpoint import (
    LoadReport,
    extract_state_dict,
    load_checkpoint,
    load_weights,
    resume_candidates,
)
from detbox.engine.training_state import TrainingState
from detbox.errors import CheckpointError

__all__ = ["load_start_weights", "resume_state"]


def _newest_loadable(work_dir: Path, logger: Any) -> tuple[Path, dict[str, Any]] | None:
    """The first of :func:`resume_candidates` that loads, and its content; logs each skipped
    file and why. None when the work dir holds no checkpoint."""
    candidates = resume_candidates(work_dir)
    reasons = []
    for path in candidates:
        try:
            return path, load_checkpoint(path, map_location="cpu")
        except CheckpointError as exc:
            reasons.append(f"{path.name}: {exc}")
            logger.warning(f"--resume auto: skipped {path} ({exc})")
    if candidates:
        raise CheckpointError(f"no checkpoint in {work_dir} can be resumed: "
                              + "; ".join(reasons))
    return None


def resume_state(state: TrainingState, path: str | os.PathLike, *, work_dir: Path,
                 iters_per_epoch: int, batches_per_epoch: int, logger: Any) -> Path | None:
    """Put a training checkpoint back into ``state``.

    Args:
        state: the run's state.
        path: a checkpoint file, or ``'auto'`` for the newest loadable one in ``work_dir``.
        work_dir: the run's work dir.
        iters_per_epoch: optimizer steps per epoch now (a change is logged).
        batches_per_epoch: loader batches per epoch now.
        logger: has ``info`` and ``warning``.

    Returns:
        The checkpoint resumed, or None when ``'auto'`` found none (start from scratch).

    Raises:
        CheckpointError: unreadable (every candidate, for ``'auto'``), not a training
            checkpoint, or not this model's.
    """
    if str(path) == "auto":
        found = _newest_loadable(work_dir, logger)
        if found is None:
            logger.info(f"no checkpoint in {work_dir} to resume; starting fresh")
            return None
        path, checkpoint = found
    else:
        path, checkpoint = Path(path), load_checkpoint(path, map_location="cpu")
    for warning in state.load_state_dict(checkpoint, source=str(path)):
        logger.warning(warning)
    epoch, iteration, batches = state.epoch, state.iteration, state.epoch_batches
    expected = epoch * iters_per_epoch + batches * iters_per_epoch // batches_per_epoch
    if iteration != expected:
        logger.warning(
            f"{path} was saved with another number of iterations per epoch "
            f"({iteration} iterations in {epoch} epochs, now {iters_per_epoch} per "
            "epoch); the LR schedule follows the iteration count"
        )
    where = f", batch {batches}/{batches_per_epoch} of epoch {epoch + 1}" if batches else ""
    logger.info(f"resumed from {path}: epoch {epoch}, iteration {iteration}{where}")
    return path


def load_start_weights(model: nn.Module, path: str | os.PathLike, logger: Any) -> LoadReport:
    """``--load-from``: another checkpoint's weights; keys whose shape differs keep their
    initialisation and are listed in the log.

    Raises:
        CheckpointError: unreadable, or not a single tensor fits the model.
    """
    report = load_weights(model, extract_state_dict(load_checkpoint(path)))
    if not report.loaded:
        raise CheckpointError(f"no weight in {path} matches the model:\n{report}")
    log = logger.warning if report.skipped else logger.info
    log(f"weights from {path}: {report}")
    return report
