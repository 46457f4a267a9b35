"""Samplers: grouped, reproducible training batches and sharded inference order."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import numpy as np
from torch.utils.data import Sampler

from detbox.errors import ConfigError

__all__ = ["GroupedBatchSampler", "InferenceSampler", "aspect_ratio_groups"]


def aspect_ratio_groups(aspect_ratios: Sequence[float]) -> list[int]:
    """Group 0 for landscape or square images (``w >= h``), group 1 for portrait ones."""
    return [0 if ratio >= 1.0 else 1 for ratio in aspect_ratios]


def _check_rank(rank: int, world_size: int) -> None:
    if world_size < 1 or not 0 <= rank < world_size:
        raise ConfigError(f"need 0 <= rank < world_size, got rank={rank}, world_size={world_size}")


class GroupedBatchSampler(Sampler[list[int]]):
    """Training batches whose images share an orientation, in a reproducible order.

    Every epoch the indices are shuffled by a generator seeded from ``(seed, epoch)`` only, so
    resuming at epoch ``k`` (after ``set_epoch(k)``) yields exactly the batches the
    uninterrupted run would have. With several processes the shuffled order is padded (by
    repeating its start) to a multiple of ``world_size`` and rank ``r`` takes every
    ``world_size``-th index from ``r``; all ranks then yield the same number of batches.

    Batches are filled per group (``w >= h`` or ``w < h``) in the shuffled order; the
    leftovers of both groups at the end of the epoch are yielded together, so the number of
    batches is ``ceil(n / batch_size)`` (``floor`` with ``drop_last``) whatever the grouping.

    Args:
        aspect_ratios: width / height of every dataset image.
        batch_size: images per batch (per process).
        shuffle: reshuffle every epoch; otherwise keep dataset order (still grouped).
        group_by_aspect_ratio: group by orientation; otherwise batches are plain slices.
        seed: shuffle seed, shared by all ranks.
        rank, world_size: this process and the number of processes.
        drop_last: drop the final, smaller batch.
    """

    def __init__(
        self,
        aspect_ratios: Sequence[float],
        batch_size: int,
        *,
        shuffle: bool = True,
        group_by_aspect_ratio: bool = True,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        drop_last: bool = False,
    ) -> None:
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
        _check_rank(rank, world_size)
        self.group_ids = aspect_ratio_groups(aspect_ratios) if group_by_aspect_ratio \
            else [0] * len(aspect_ratios)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.drop_last = drop_last
        self.epoch = 0
        self.num_per_rank = math.ceil(len(self.group_ids) / world_size)

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose order the next iteration yields."""
        self.epoch = epoch

    def _rank_indices(self) -> list[int]:
        count = len(self.group_ids)
        if self.shuffle:
            rng = np.random.default_rng([self.seed, self.epoch])
            order = rng.permutation(count).tolist()
        else:
            order = list(range(count))
        total = self.num_per_rank * self.world_size
        if order and total > count:
            order += [order[i % count] for i in range(total - count)]
        return order[self.rank : total : self.world_size]

    def __iter__(self) -> Iterator[list[int]]:
        buckets: dict[int, list[int]] = {}
        for index in self._rank_indices():
            bucket = buckets.setdefault(self.group_ids[index], [])
            bucket.append(index)
            if len(bucket) == self.batch_size:
                yield bucket[:]
                bucket.clear()
        leftovers = [i for group in sorted(buckets) for i in buckets[group]]
        for start in range(0, len(leftovers), self.batch_size):
            batch = leftovers[start : start + self.batch_size]
            if len(batch) == self.batch_size or not self.drop_last:
                yield batch

    def __len__(self) -> int:
        if self.drop_last:
            return self.num_per_rank // self.batch_size
        return math.ceil(self.num_per_rank / self.batch_size)


class InferenceSampler(Sampler[int]):
    """Dataset order, split into contiguous shards (one per rank) without duplicates.

    Shard sizes differ by at most one, so gathering the ranks' results in rank order gives
    every image exactly once, in dataset order.
    """

    def __init__(self, num_samples: int, *, rank: int = 0, world_size: int = 1) -> None:
        _check_rank(rank, world_size)
        per_rank, extra = divmod(num_samples, world_size)
        self.start = rank * per_rank + min(rank, extra)
        self.stop = self.start + per_rank + (1 if rank < extra else 0)

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.start, self.stop))

    def __len__(self) -> int:
        return self.stop - self.start
