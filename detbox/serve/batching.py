"""Dynamic batching: images of concurrent requests share one model call.

Requests put their images on a queue and await a future each. One worker thread owns the
model: it takes the first waiting image, gathers more for at most ``max_wait_ms`` (or until
``max_batch``), runs them as one batch and resolves the futures on their event loops. While a
batch runs, new images queue up and form the next batch at once, so under load the batches
fill by themselves and an idle server adds only the short wait to a lone request.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["DynamicBatcher"]

_STOP = object()


@dataclass
class _Job:
    image: np.ndarray
    future: asyncio.Future
    loop: asyncio.AbstractEventLoop


class DynamicBatcher:
    """Run ``predict_batch`` on images from many requests, ``max_batch`` at a time.

    Args:
        predict_batch: (H, W, 3) uint8 RGB arrays -> one result per array, in order; always
            called from the same worker thread.
        max_batch: the most images in one call.
        max_wait_ms: how long the first image of a batch waits for company.
    """

    def __init__(self, predict_batch: Callable[[Sequence[np.ndarray]], Sequence[Any]], *,
                 max_batch: int = 8, max_wait_ms: float = 5.0) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, got {max_batch}")
        self.predict_batch = predict_batch
        self.max_batch = max_batch
        self.max_wait = max_wait_ms / 1000.0
        self.calls = 0  # model calls so far
        self.batch_sizes: list[int] = []  # of the last 1000 calls
        self._queue: queue.Queue = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    async def submit(self, image: np.ndarray) -> Any:
        """The result for one image, once its batch has run (its exception, if it failed)."""
        self._ensure_worker()
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._queue.put(_Job(image, future, loop))
        return await future

    def close(self) -> None:
        """Stop the worker after the batches already queued."""
        with self._lock:
            if self._thread is not None:
                self._queue.put(_STOP)
                self._thread.join(timeout=30)
                self._thread = None

    def _ensure_worker(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._work, name="detbox-serve-model",
                                                daemon=True)
                self._thread.start()

    def _gather(self, first: _Job) -> tuple[list[_Job], bool]:
        """``first`` and whatever arrives within the wait, up to ``max_batch``; whether to
        stop afterwards."""
        jobs = [first]
        deadline = time.monotonic() + self.max_wait
        while len(jobs) < self.max_batch:
            try:
                item = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if item is _STOP:
                return jobs, True
            jobs.append(item)
        return jobs, False

    def _work(self) -> None:
        while True:
            first = self._queue.get()
            if first is _STOP:
                return
            jobs, stop = self._gather(first)
            self.calls += 1
            self.batch_sizes = [*self.batch_sizes[-999:], len(jobs)]
            try:
                results = list(self.predict_batch([job.image for job in jobs]))
                outcomes = [(result, None) for result in results]
            except Exception as exc:  # every waiting request gets the error, the worker lives
                outcomes = [(None, exc)] * len(jobs)
            for job, (result, error) in zip(jobs, outcomes):
                try:
                    job.loop.call_soon_threadsafe(_resolve, job.future, result, error)
                except RuntimeError:  # that request's event loop is gone; nobody waits
                    pass
            if stop:
                return


def _resolve(future: asyncio.Future, result: Any, error: BaseException | None) -> None:
    if future.cancelled():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
