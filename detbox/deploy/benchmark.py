"""Inference speed: images per second, latency percentiles, data vs model time, peak memory.

Each measured batch is timed in two parts: *data* (loading the images and running the config's
test pipeline, collating and moving to the device) and *model* (``model.predict``, with CUDA
synchronised before and after so that the time is the GPU's, not the launch's). A few warm-up
batches run first and are not measured (cuDNN autotuning, allocator growth, lazy imports).
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from detbox.data.inference import ImageInput, load_image, prepare_batch
from detbox.data.skipping import UnreadableFiles
from detbox.errors import ImageReadError

__all__ = [
    "BenchmarkResult",
    "benchmark_detector",
    "format_benchmark",
    "peak_rss_bytes",
    "readable_images",
    "synthetic_images",
]


@dataclass
class BenchmarkResult:
    """Timings of the measured batches (warm-up excluded).

    Attributes:
        device: where the model ran.
        num_images: images measured (the last batch may be smaller than ``batch_size``).
        batch_size: images per batch.
        data_seconds: per batch, loading + pipeline + collate + copy to the device.
        model_seconds: per batch, ``model.predict``.
        peak_memory_bytes: CUDA max allocated during the measured batches, or on the CPU the
            process's peak resident set size (which includes everything before the benchmark).
        memory_kind: ``"cuda_max_allocated"`` or ``"cpu_peak_rss"``.
    """

    device: str
    num_images: int
    batch_size: int
    data_seconds: list[float] = field(default_factory=list)
    model_seconds: list[float] = field(default_factory=list)
    peak_memory_bytes: int = 0
    memory_kind: str = "cpu_peak_rss"

    @property
    def num_batches(self) -> int:
        return len(self.model_seconds)

    @property
    def total_seconds(self) -> float:
        return float(sum(self.data_seconds) + sum(self.model_seconds))

    @property
    def images_per_second(self) -> float:
        """End-to-end throughput (data + model)."""
        return self.num_images / self.total_seconds if self.total_seconds else math.nan

    @property
    def model_images_per_second(self) -> float:
        """Throughput of the model alone."""
        seconds = sum(self.model_seconds)
        return self.num_images / seconds if seconds else math.nan

    def latency_ms(self, percentile: float) -> float:
        """Model latency per batch at ``percentile`` (0-100), in milliseconds."""
        return float(np.percentile(np.asarray(self.model_seconds), percentile) * 1000)

    def to_dict(self) -> dict[str, float | int | str]:
        return {
            "device": self.device, "num_images": self.num_images, "batch_size": self.batch_size,
            "num_batches": self.num_batches, "images_per_second": self.images_per_second,
            "model_images_per_second": self.model_images_per_second,
            "latency_ms_p50": self.latency_ms(50), "latency_ms_p90": self.latency_ms(90),
            "latency_ms_p99": self.latency_ms(99),
            "data_seconds_total": float(sum(self.data_seconds)),
            "model_seconds_total": float(sum(self.model_seconds)),
            "peak_memory_bytes": self.peak_memory_bytes, "memory_kind": self.memory_kind,
        }


def synthetic_images(count: int, shape: tuple[int, int], seed: int = 0) -> list[np.ndarray]:
    """``count`` random (H, W, 3) uint8 RGB images: smooth blobs on noise, not constant."""
    rng = np.random.default_rng(seed)
    height, width = shape
    images = []
    for _ in range(count):
        image = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
        for _ in range(3):
            x1, y1 = int(rng.integers(0, width)), int(rng.integers(0, height))
            x2, y2 = min(width, x1 + width // 3 + 1), min(height, y1 + height // 3 + 1)
            image[y1:y2, x1:x2] = rng.integers(0, 256, size=3, dtype=np.uint8)
        images.append(image)
    return images


def readable_images(images: Sequence[ImageInput], unreadable: UnreadableFiles
                    ) -> list[ImageInput]:
    """``images`` without the files that cannot be read, which go to ``unreadable``.

    Checked once before timing, so that the measured batches are made of the same readable
    images every time (a benchmark reads its files many times anyway).
    """
    kept = []
    for image in images:
        try:
            load_image(image)
        except ImageReadError as exc:
            unreadable.add_error(exc)
            continue
        kept.append(image)
    return kept


def peak_rss_bytes() -> int:
    """Peak resident set size of this process (0 where ``resource`` is unavailable)."""
    try:
        import resource
    except ImportError:  # Windows
        return 0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(step: Callable[[], object], device: torch.device) -> tuple[object, float]:
    _sync(device)
    start = time.perf_counter()
    out = step()
    _sync(device)
    return out, time.perf_counter() - start


@torch.no_grad()
def benchmark_detector(
    model: nn.Module,
    images: Sequence[ImageInput],
    num_images: int,
    batch_size: int = 1,
    warmup: int = 2,
) -> BenchmarkResult:
    """Time ``model.predict`` on ``num_images`` images taken in turn from ``images``.

    Args:
        model: a detector with ``cfg`` (its test pipeline prepares the images).
        images: paths or RGB arrays; reused in a cycle when fewer than needed.
        num_images: images to measure, after the warm-up.
        batch_size: images per ``predict`` call.
        warmup: batches run first and not measured.
    """
    if num_images <= 0 or batch_size <= 0 or not images:
        raise ValueError("benchmark needs num_images > 0, batch_size > 0 and some images")
    device = next(model.parameters()).device
    model.eval()
    result = BenchmarkResult(device=str(device), num_images=num_images, batch_size=batch_size)
    sizes = [batch_size] * warmup + [batch_size] * (num_images // batch_size)
    if num_images % batch_size:
        sizes.append(num_images % batch_size)
    cursor = 0
    for index, size in enumerate(sizes):
        if index == warmup and device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        chunk = [images[(cursor + i) % len(images)] for i in range(size)]
        cursor += size
        batch, data_time = _timed(lambda c=chunk: prepare_batch(model.cfg, c).to(device), device)
        _, model_time = _timed(lambda b=batch: model.predict(b), device)
        if index >= warmup:
            result.data_seconds.append(data_time)
            result.model_seconds.append(model_time)
    if device.type == "cuda":
        result.peak_memory_bytes = int(torch.cuda.max_memory_allocated(device))
        result.memory_kind = "cuda_max_allocated"
    else:
        result.peak_memory_bytes = peak_rss_bytes()
    return result


def format_benchmark(result: BenchmarkResult) -> str:
    """The report printed by ``detbox benchmark``."""
    data, model = sum(result.data_seconds), sum(result.model_seconds)
    memory = (f"CUDA max allocated {result.peak_memory_bytes / 2**20:.0f} MiB"
              if result.memory_kind == "cuda_max_allocated"
              else f"peak RSS of the process {result.peak_memory_bytes / 2**20:.0f} MiB (CPU)")
    return "\n".join([
        f"{result.num_images} images in {result.num_batches} batches of up to "
        f"{result.batch_size} on {result.device}",
        f"throughput: {result.images_per_second:.2f} images/s end to end, "
        f"{result.model_images_per_second:.2f} images/s model only",
        f"model latency per batch: p50 {result.latency_ms(50):.1f} ms, "
        f"p90 {result.latency_ms(90):.1f} ms, p99 {result.latency_ms(99):.1f} ms",
        f"time split: data {data:.3f} s ({100 * data / max(data + model, 1e-12):.0f}%), "
        f"model {model:.3f} s",
        f"memory: {memory}",
    ])
