"""What the trainer asks of its train loader: its length, batch size and epoch hook.

The trainer accepts any iterable with a length (a ``DataLoader``, a list of batches in tests),
so these look for what the loader offers instead of assuming a ``DataLoader``.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Iterable
from typing import Any

import torch
from torch.utils.data import DataLoader

from detbox.engine.seed import preserved_rng_state
from detbox.errors import ConfigError

__all__ = [
    "iterate_from", "loader_batch_size", "loader_generator", "loader_length", "set_loader_epoch",
]


def loader_length(loader: Any) -> int:
    """Batches per epoch of a training loader."""
    try:
        length = len(loader)
    except TypeError:
        raise ConfigError("the train loader needs a length (iterations per epoch)") from None
    if length < 1:
        raise ConfigError("the train loader yields no batch: is the training set empty?")
    return length


def loader_batch_size(loader: Any) -> int | None:
    """Images per batch of one process, when the loader or its batch sampler says."""
    for source in (getattr(loader, "batch_sampler", None), loader):
        size = getattr(source, "batch_size", None)
        if isinstance(size, int):
            return size
    return None


def loader_generator(loader: Any) -> torch.Generator | None:
    """The loader's own random generator (its state is saved with the run's), if it has one."""
    generator = getattr(loader, "generator", None)
    return generator if isinstance(generator, torch.Generator) else None


def set_loader_epoch(loader: Any, epoch: int) -> None:
    """``loader.set_epoch(epoch)`` when the loader has it (it forwards to its samplers), else
    ``set_epoch`` on each of its samplers that has it."""
    if hasattr(loader, "set_epoch"):
        loader.set_epoch(epoch)
        return
    batch_sampler = getattr(loader, "batch_sampler", None)
    candidates = [batch_sampler, getattr(batch_sampler, "sampler", None),
                  getattr(loader, "sampler", None)]
    seen: set[int] = set()
    for sampler in candidates:
        if sampler is not None and id(sampler) not in seen and hasattr(sampler, "set_epoch"):
            seen.add(id(sampler))
            sampler.set_epoch(epoch)


class _SkipBatches:
    """A batch sampler without its first ``start`` batches (their images are never loaded)."""

    def __init__(self, batch_sampler: Any, start: int) -> None:
        self.inner, self.start = batch_sampler, start

    def __iter__(self) -> Any:
        return itertools.islice(iter(self.inner), self.start, None)

    def __len__(self) -> int:
        return max(len(self.inner) - self.start, 0)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def iterate_from(loader: Any, start: int) -> Iterable[Any]:
    """The loader's batches of this epoch from batch ``start`` (0-based) on.

    A ``DataLoader`` without worker processes skips the first batches in its batch sampler, so
    their images are neither read nor augmented and the random state restored from a mid-epoch
    checkpoint meets the next batch exactly as in the uninterrupted run. Worker processes draw
    augmentations from their own generators, seeded when the pass starts (per epoch, by
    :class:`~detbox.data.build.DetDataLoader`), so with workers the epoch's first ``start``
    batches are loaded again and dropped: each worker then goes through the same batches as in
    the uninterrupted run and reaches batch ``start`` in the same random state (a mid-epoch
    resume costs up to an epoch of data loading, no training). Any other iterable is sliced.
    """
    if start <= 0:
        return loader
    if isinstance(loader, DataLoader) and loader.num_workers > 0:
        with preserved_rng_state():
            return itertools.islice(iter(loader), start, None)
    if isinstance(loader, DataLoader) and loader.batch_sampler is not None:
        clone = copy.copy(loader)
        object.__setattr__(clone, "batch_sampler", _SkipBatches(loader.batch_sampler, start))
        object.__setattr__(clone, "_iterator", None)
        # A loader without its own generator draws its workers' base seed from the global RNG
        # when the pass starts; the uninterrupted run drew it before the checkpoint was saved.
        with preserved_rng_state():
            return iter(clone)
    return itertools.islice(iter(loader), start, None)
