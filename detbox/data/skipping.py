"""Skipping unreadable images instead of ending a long run.

Inference and evaluation go on past a file that cannot be read: ``UnreadableFiles`` collects
what was skipped and words the summary line the commands print, and a test-mode dataset
returns an ``UnreadableImage`` in place of the item, which ``collate`` moves to
``ImageBatch.skipped`` so that evaluation leaves the image out.

Training:
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
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from detbox.errors import DatasetError, ImageReadError
from detbox.structures import DetSample

__all__ = [
    "SkippedImages",
    "UnreadableFiles",
    "UnreadableImage",
    "load_or_unreadable",
    "load_skipping_unreadable",
    "watch_skipped",
]

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


@dataclass(frozen=True)
class UnreadableImage:
    """What a test-mode dataset gives for an image it cannot read, in place of the item.

    Attributes:
        path: the image file.
        reason: ``ImageReadError.reason`` (``truncated``, ``not an image``, ...).
        image_id: the image's id in the annotation file.
    """

    path: str
    reason: str
    image_id: int


def load_or_unreadable(
    load: Callable[[Mapping[str, Any]], Any], record: Mapping[str, Any]
) -> Any:
    """``load(record)``, or an ``UnreadableImage`` when its image file cannot be read."""
    try:
        return load(record)
    except ImageReadError as exc:
        return UnreadableImage(exc.path, exc.reason, int(record.get("image_id", -1)))


class UnreadableFiles:
    """The inputs a command skipped because they could not be read, in the order met.

    Args:
        unit: what the inputs are called in the summary (``files``, ``images``, ``frames``).
    """

    def __init__(self, unit: str = "files") -> None:
        self.unit = unit
        self.entries: list[tuple[str, str]] = []
        self.details: list[str] = []

    def __len__(self) -> int:
        return len(self.entries)

    def add(self, path: str, reason: str, detail: str | None = None) -> None:
        """Record one skipped input and log ``skipped <detail>`` (default: path and reason)."""
        self.entries.append((str(path), reason))
        self.details.append(detail or f"{path}: {reason}")
        logger.warning(f"skipped {self.details[-1]}")

    def add_error(self, error: ImageReadError) -> None:
        """Record the file of ``error``, logging its message."""
        self.add(error.path, error.reason, str(error))

    def summary(self, total: int) -> str:
        """``3 of 11 files could not be read: a.jpg (empty file), ...`` (file names only)."""
        listed = ", ".join(f"{Path(path).name} ({reason})" for path, reason in self.entries)
        return f"{len(self)} of {total} {self.unit} could not be read: {listed}"

    def check_some_read(self, total: int) -> None:
        """Raise when every one of ``total`` inputs was skipped (nothing to report on).

        Raises:
            DatasetError: ``total`` inputs, all of them skipped; for a single input, its own
                message.
        """
        if total == 1 and len(self) == 1:
            raise DatasetError(self.details[0])
        if total and len(self) >= total:
            listed = ", ".join(f"{Path(path).name} ({reason})" for path, reason in self.entries)
            raise DatasetError(f"none of the {total} {self.unit} could be read: {listed}")
