"""Dynamic batching: concurrent submissions share model calls, never more than max_batch."""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import pytest

from detbox.serve.batching import DynamicBatcher


def _slow_echo(calls: list[int], seconds: float = 0.02):
    def run(images):
        calls.append(len(images))
        time.sleep(seconds)
        return [int(image[0, 0, 0]) for image in images]
    return run


def _images(count: int) -> list[np.ndarray]:
    return [np.full((2, 2, 3), i, dtype=np.uint8) for i in range(count)]


def test_concurrent_images_are_batched_and_answered_in_place():
    calls: list[int] = []
    batcher = DynamicBatcher(_slow_echo(calls), max_batch=8, max_wait_ms=20)

    async def main():
        return await asyncio.gather(*(batcher.submit(image) for image in _images(20)))

    try:
        assert asyncio.run(main()) == list(range(20))  # each caller gets its own result
    finally:
        batcher.close()
    assert sum(calls) == 20 and max(calls) <= 8 and len(calls) <= 4
    assert batcher.batch_sizes == calls and batcher.calls == len(calls)


def test_max_batch_one_runs_images_one_by_one():
    calls: list[int] = []
    batcher = DynamicBatcher(_slow_echo(calls, 0.0), max_batch=1)

    async def main():
        return await asyncio.gather(*(batcher.submit(image) for image in _images(5)))

    try:
        assert asyncio.run(main()) == list(range(5))
    finally:
        batcher.close()
    assert calls == [1] * 5


def test_a_failing_batch_fails_its_requests_and_the_worker_lives_on():
    state = {"fail": True}

    def run(images):
        if state["fail"]:
            state["fail"] = False
            raise RuntimeError("out of memory")
        return [1] * len(images)

    batcher = DynamicBatcher(run, max_batch=4, max_wait_ms=1)
    try:
        with pytest.raises(RuntimeError, match="out of memory"):
            asyncio.run(batcher.submit(_images(1)[0]))
        assert asyncio.run(batcher.submit(_images(1)[0])) == 1
    finally:
        batcher.close()


def test_requests_from_several_event_loops_share_the_worker():
    calls: list[int] = []
    batcher = DynamicBatcher(_slow_echo(calls, 0.05), max_batch=8, max_wait_ms=30)
    results = {}

    def client(i):
        results[i] = asyncio.run(batcher.submit(_images(6)[i]))

    threads = [threading.Thread(target=client, args=(i,)) for i in range(6)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
    finally:
        batcher.close()
    assert results == {i: i for i in range(6)}
    assert len(calls) < 6  # at least two of them shared a call


def test_close_stops_the_worker_thread():
    batcher = DynamicBatcher(_slow_echo([], 0.0), max_batch=2)
    assert asyncio.run(batcher.submit(_images(1)[0])) == 0
    worker = batcher._thread
    batcher.close()
    assert worker is not None and not worker.is_alive()
    with pytest.raises(ValueError, match="at least 1"):
        DynamicBatcher(_slow_echo([]), max_batch=0)
