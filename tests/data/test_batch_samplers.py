"""Grouped training batches (reproducible per epoch, rank-aware) and sharded inference order."""

from __future__ import annotations

import itertools

import pytest

from detbox.data import GroupedBatchSampler, InferenceSampler, aspect_ratio_groups

RATIOS = [1.5, 0.5, 1.0, 0.75, 1.33, 0.6, 2.0, 0.8, 1.2, 0.7, 1.1, 1.4, 0.9]


def _epochs(sampler: GroupedBatchSampler, epochs: range) -> list[list[list[int]]]:
    out = []
    for epoch in epochs:
        sampler.set_epoch(epoch)
        out.append(list(sampler))
    return out


def test_groups_by_orientation_and_covers_every_index() -> None:
    groups = aspect_ratio_groups(RATIOS)
    sampler = GroupedBatchSampler(RATIOS, batch_size=3, seed=0)
    batches = list(sampler)
    assert sorted(itertools.chain(*batches)) == list(range(len(RATIOS)))
    assert len(batches) == len(sampler) == 5
    full_group_batches = [b for b in batches if len({groups[i] for i in b}) == 1]
    assert len(full_group_batches) >= len(batches) - 1  # only the tail may mix


def test_same_seed_and_epoch_give_same_order() -> None:
    first = GroupedBatchSampler(RATIOS, batch_size=2, seed=5)
    second = GroupedBatchSampler(RATIOS, batch_size=2, seed=5)
    assert _epochs(first, range(3)) == _epochs(second, range(3))
    orders = _epochs(first, range(3))
    assert orders[0] != orders[1] != orders[2]
    assert list(GroupedBatchSampler(RATIOS, batch_size=2, seed=6)) != orders[0]


def test_resuming_at_an_epoch_reproduces_the_uninterrupted_run() -> None:
    uninterrupted = _epochs(GroupedBatchSampler(RATIOS, batch_size=4, seed=1), range(6))
    resumed = _epochs(GroupedBatchSampler(RATIOS, batch_size=4, seed=1), range(3, 6))
    assert resumed == uninterrupted[3:]


def test_no_shuffle_keeps_dataset_order_within_groups() -> None:
    sampler = GroupedBatchSampler(RATIOS, batch_size=2, shuffle=False,
                                  group_by_aspect_ratio=False)
    assert list(sampler)[:3] == [[0, 1], [2, 3], [4, 5]]


@pytest.mark.parametrize("drop_last", [False, True])
@pytest.mark.parametrize("world_size", [1, 2, 3, 4])
def test_ranks_split_the_data_evenly(world_size: int, drop_last: bool) -> None:
    per_rank = []
    for rank in range(world_size):
        sampler = GroupedBatchSampler(RATIOS, batch_size=2, seed=3, rank=rank,
                                      world_size=world_size, drop_last=drop_last)
        sampler.set_epoch(2)
        batches = list(sampler)
        assert len(batches) == len(sampler)
        assert all(len(b) == 2 for b in batches) or not drop_last
        per_rank.append(list(itertools.chain(*batches)))
    assert len({len(indices) for indices in per_rank}) == 1
    if not drop_last:
        assert set(itertools.chain(*per_rank)) == set(range(len(RATIOS)))


def test_bad_rank_is_config_error() -> None:
    from detbox.errors import ConfigError

    with pytest.raises(ConfigError):
        GroupedBatchSampler(RATIOS, batch_size=2, rank=2, world_size=2)
    with pytest.raises(ConfigError):
        InferenceSampler(5, rank=-1)


@pytest.mark.parametrize(("num", "world_size"), [(10, 1), (10, 3), (2, 4), (0, 2)])
def test_inference_shards_without_duplicates(num: int, world_size: int) -> None:
    shards = [list(InferenceSampler(num, rank=r, world_size=world_size))
              for r in range(world_size)]
    assert list(itertools.chain(*shards)) == list(range(num))
    assert max(map(len, shards)) - min(map(len, shards)) <= 1
    assert [len(InferenceSampler(num, rank=r, world_size=world_size))
            for r in range(world_size)] == list(map(len, shards))
