"""Skipping unreadable images during training instead of ending a long run.

A training dataset that meets an image it cannot load (missing, truncated, not an image, of
another size than its annotation says) draws another image instead and records the skipped file
in ``sample.extra['skipped_images']``. The data loader, in the main process, logs each skipped
file once and counts the distinct ones; more than ``max_skipped_images`` is an error, so a
broken dataset still stops the run early. Each loader worker also counts what it skipped itself,
which bounds the retries when the dataset is used without the loader.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from detbox.errors import DatasetError
from detbox.structures import DetSample

__all__ = ["SkippedImages", "load_skipping_unreadable", "watch_skipped"]

logger = logging.getLogger("detbox.data")

EXTRA_KEY = "skipped_images"


class SkippedImages:
    """The distinct files skipped so far, each with the reason; too many is an error.

    Args:
        limit: how many distinct files may be skipped; one more raises DatasetError.
        source: what to name in the error (the annotation file).
    """

    def __init__(self, limit: int, source: str) -> None:
        self.limit = limit
        self.source = source
        self.reasons: dict[str, str] = {}

    def __len__(self) -> int:
        return len(self.reasons)

    def add(self, path: str, reason: str) -> bool:
        """Record a skipped file; True when it was not skipped before.

        Raises:
            DatasetError: more than ``limit`` distinct files skipped.
        """
        if path in self.reasons:
            return False
        self.reasons[path] = reason
        if len(self.reasons) > self.limit:
            listed = "; ".join(self.reasons.values())
            raise DatasetError(
                f"{self.source}: {len(self.reasons)} images could not be loaded, more than "
                f"max_skipped_images={self.limit}: {listed}. Run `detbox check-dataset` to list "
                "every problem, fix or remove those images, or raise max_skipped_images"
            )
        return True


def load_skipping_unreadable(
    load: Callable[[int], Any], index: int, size: int, skipped: SkippedImages,
    path_of: Callable[[int], str],
) -> Any:
    """``load(index)``, or ``load`` of random other indices while it raises DatasetError.

    The skipped files go into ``skipped`` and, when the result is ``(image, DetSample)``, into
    ``sample.extra['skipped_images']`` as ``[path, reason]`` pairs for the loader to report.

    Raises:
        DatasetError: past the limit of ``skipped``, or when no readable image turns up after
            ``limit + 2`` tries.
    """
    failures: list[list[str]] = []
    for _ in range(skipped.limit + 2):
        try:
            item = load(index)
        except DatasetError as exc:
            path = path_of(index)
            skipped.add(path, str(exc))
            failures.append([path, str(exc)])
            index = random.randrange(size)
            continue
        if failures and isinstance(item, tuple) and isinstance(item[-1], DetSample):
            item[-1].extra.setdefault(EXTRA_KEY, []).extend(failures)
        return item
    raise DatasetError(f"{skipped.source}: no readable image found after {len(failures)} tries; "
                       f"last problem: {failures[-1][1]}")


def watch_skipped(batches: Iterable[Any], skipped: SkippedImages) -> Iterator[Any]:
    """Pass batches through, logging and counting the files their samples report as skipped."""
    for batch in batches:
        for sample in getattr(batch, "samples", ()):
            for path, reason in sample.extra.pop(EXTRA_KEY, ()):
                if skipped.add(path, reason):
                    logger.warning(f"skipped an image that could not be loaded ({len(skipped)} "
                                   f"of at most {skipped.limit}): {reason}")
        yield batch
