"""Build datasets and data loaders from config sections."""

from __future__ import annotations

import functools
import random
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from detbox.data.collate import collate
from detbox.data.samplers import GroupedBatchSampler, InferenceSampler
from detbox.data.skipping import SkippedImages, watch_skipped
from detbox.errors import ConfigError, DatasetError
from detbox.registry import DATASETS, check_kwargs

__all__ = ["DetDataLoader", "build_dataloader", "build_dataset", "seed_worker"]


def build_dataset(cfg: Mapping[str, Any] | Dataset) -> Dataset:
    """Build ``dict(type='CocoDataset', ...)``; an already built dataset is returned as is."""
    return DATASETS.build(cfg)


def _loader_options(
    dataset: Mapping[str, Any] | Dataset,
    batch_size: int = 2,
    num_workers: int = 2,
    shuffle: bool = True,
    group_by_aspect_ratio: bool = True,
    size_divisor: int = 32,
    drop_last: bool = False,
    persistent_workers: bool = False,
    pin_memory: bool | None = None,
    prefetch_factor: int | None = None,
) -> dict[str, Any]:
    """The keys a data loader config section may set, with their defaults.

    ``pin_memory=None`` pins batches (page-locked host memory, so that the copy to the GPU
    can overlap the step) exactly when CUDA is available; ``prefetch_factor`` is the batches
    each worker prepares ahead (torch's default 2 when None; needs ``num_workers > 0``).
    ``persistent_workers`` stays off by default: workers then draw fresh seeds every epoch,
    which resuming relies on (see :class:`DetDataLoader`).
    """
    return dict(locals())


def _worker_options(options: dict[str, Any]) -> dict[str, Any]:
    """The DataLoader keywords about worker processes and pinned memory."""
    num_workers = int(options["num_workers"])
    pin = options["pin_memory"]
    worker_options: dict[str, Any] = {
        "num_workers": num_workers,
        "persistent_workers": bool(options["persistent_workers"]) and num_workers > 0,
        "pin_memory": torch.cuda.is_available() if pin is None else bool(pin),
    }
    if options["prefetch_factor"] is not None:
        if num_workers == 0:
            raise ConfigError("data loader prefetch_factor needs num_workers > 0 (the batches "
                              "each worker prepares ahead); remove it or add workers")
        worker_options["prefetch_factor"] = int(options["prefetch_factor"])
    return worker_options


def seed_worker(worker_id: int) -> None:
    """Seed ``random`` and numpy in a loader worker from its torch seed.

    The loader gives each worker ``base_seed + worker_id`` as torch seed, and the base seed comes
    from the loader's generator, which ``build_dataloader`` seeds from the run seed, the rank
    and the epoch; augmentations are then reproducible, and differ across workers and ranks.
    """
    seed = torch.initial_seed() % 2**32
    random.seed(seed)
    np.random.seed(seed)


def build_dataloader(
    cfg: Mapping[str, Any],
    *,
    seed: int = 0,
    training: bool,
    rank: int = 0,
    world_size: int = 1,
) -> DetDataLoader:
    """A DataLoader yielding ImageBatch objects for a config section such as::

        dict(batch_size=2, num_workers=2, shuffle=True, group_by_aspect_ratio=True,
             size_divisor=32, dataset=dict(type='CocoDataset', ann_file=..., img_dir=...,
             pipeline=[...]))

    Training uses a GroupedBatchSampler (call ``loader.set_epoch(epoch)`` before each
    epoch); inference uses an InferenceSampler (dataset order, sharded over ranks, no
    duplicates). ``shuffle``, ``group_by_aspect_ratio`` and ``drop_last`` only apply to training.

    Raises:
        ConfigError: an unknown key in ``cfg`` (naming the closest valid one).
        DatasetError: a training dataset without images.
    """
    if not isinstance(cfg, Mapping):
        raise ConfigError(f"a data loader config must be a dict, got {type(cfg).__name__}")
    check_kwargs(_loader_options, cfg, where="data loader config")
    options = _loader_options(**cfg)
    dataset = build_dataset(options["dataset"])
    if training and len(dataset) == 0:
        source = getattr(dataset, "ann_file", type(dataset).__name__)
        raise DatasetError(f"{source}: no images to train on (after filter_empty, if set)")
    if training:
        batch_sampler = GroupedBatchSampler(
            dataset.aspect_ratios, options["batch_size"], shuffle=options["shuffle"],
            group_by_aspect_ratio=options["group_by_aspect_ratio"], seed=seed, rank=rank,
            world_size=world_size, drop_last=options["drop_last"],
        )
        sampling: dict[str, Any] = {"batch_sampler": batch_sampler}
    else:
        sampler = InferenceSampler(len(dataset), rank=rank, world_size=world_size)
        sampling = {"sampler": sampler, "batch_size": options["batch_size"]}
    loader = DetDataLoader(
        dataset,
        seed=seed,
        rank=rank,
        collate_fn=functools.partial(collate, size_divisor=options["size_divisor"]),
        worker_init_fn=seed_worker,
        **_worker_options(options),
        **sampling,
    )
    return loader


class DetDataLoader(DataLoader):
    """A DataLoader whose every epoch is a function of ``(seed, rank, epoch)``.

    The epoch is the batch sampler's (``GroupedBatchSampler.set_epoch``, which the trainer
    calls) or the one given to ``set_epoch``. Each pass reseeds the generator the workers'
    seeds come from, so resuming at epoch ``k`` reproduces the uninterrupted run's batches and,
    with ``num_workers > 0``, its augmentations. With ``num_workers=0`` augmentations draw from
    the main process's ``random`` module, which the trainer seeds; persistent workers keep the
    seeds of the first pass.

    A dataset with ``max_skipped_images > 0`` reports the images it skipped; the loader logs
    each file once and raises DatasetError past the limit (``detbox.data.skipping``).
    """

    def __init__(self, *args: Any, seed: int = 0, rank: int = 0, **kwargs: Any) -> None:
        super().__init__(*args, generator=torch.Generator(), **kwargs)
        self.seed = seed
        self.rank = rank
        self.epoch = 0
        self.skipped: SkippedImages | None = None

    def set_epoch(self, epoch: int) -> None:
        """Make the next pass over the loader reproduce epoch ``epoch`` of the run."""
        self.epoch = epoch
        if hasattr(self.batch_sampler, "set_epoch"):
            self.batch_sampler.set_epoch(epoch)

    def __iter__(self) -> Iterator[Any]:
        epoch = getattr(self.batch_sampler, "epoch", self.epoch)
        state = np.random.SeedSequence([self.seed, self.rank, epoch]).generate_state(1, np.uint64)
        self.generator.manual_seed(int(state[0]) >> 1)
        limit = int(getattr(self.dataset, "max_skipped_images", 0) or 0)
        if limit <= 0:
            return super().__iter__()
        if self.skipped is None:
            source = str(getattr(self.dataset, "ann_file", type(self.dataset).__name__))
            self.skipped = SkippedImages(limit, source)
        return watch_skipped(super().__iter__(), self.skipped)
