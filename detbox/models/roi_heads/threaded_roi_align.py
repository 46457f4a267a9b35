"""RoIAlign on a CPU with the RoIs shared among torch's threads.

torchvision's CPU RoIAlign kernels (forward and backward) run on one thread whatever
``torch.get_num_threads()`` says; over the ~1000 proposals of a two-stage detector that is
one core busy and the others idle for 0.1-0.4 s per image. The kernels release the GIL, so
:func:`threaded_roi_align` splits the RoIs into one chunk per thread and runs torchvision's
kernel on each chunk in a small thread pool: every RoI is computed by the same code on the
same inputs, so the pooled features are bit-identical to one call's. Under autograd the
backward is split the same way (each chunk's gradient map, summed).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import torch
from torch import Tensor
from torchvision.ops import roi_align

from detbox.models.graph_capture import capturing_graph

__all__ = ["MIN_ROIS_PER_THREAD", "threaded_roi_align"]

# Fewer RoIs than this per thread and the pool's overhead (~50 us a task) is not worth it.
MIN_ROIS_PER_THREAD = 32

_Item = TypeVar("_Item")
_POOLS: dict[int, ThreadPoolExecutor] = {}  # by torch's thread count
_POOLS_LOCK = threading.Lock()


def _pool() -> ThreadPoolExecutor:
    """A pool of ``torch.get_num_threads()`` threads, made on first use and kept."""
    workers = torch.get_num_threads()
    with _POOLS_LOCK:
        if workers not in _POOLS:
            _POOLS[workers] = ThreadPoolExecutor(workers, thread_name_prefix="detbox-roi-align")
        return _POOLS[workers]


def _in_threads(fn: Callable[[_Item], Tensor], items: Sequence[_Item]) -> list[Tensor]:
    """``fn`` of each item (at most one per torch thread) on the pool's threads, without
    autograd (grad and inference mode are per thread: the caller's inference mode is carried
    over)."""
    inference = torch.is_inference_mode_enabled()

    def run(item: _Item) -> Tensor:
        with torch.inference_mode(inference), torch.no_grad():
            return fn(item)

    return list(_pool().map(run, items))


def _threads_for(feat: Tensor, rois: Tensor) -> int:
    """How many threads to share ``rois`` among: 1 (one plain call) on GPUs, under tracing or
    export, with one torch thread or too few RoIs."""
    if feat.device.type != "cpu" or capturing_graph():
        return 1
    return max(1, min(torch.get_num_threads(), rois.shape[0] // MIN_ROIS_PER_THREAD))


class _ThreadedRoIAlign(torch.autograd.Function):
    """RoIAlign forward and backward, each over RoI chunks in threads."""

    @staticmethod
    def forward(ctx, feat: Tensor, rois: Tensor, size: tuple[int, int], scale: float,
                sampling_ratio: int, aligned: bool, threads: int) -> Tensor:
        ctx.save_for_backward(rois)
        ctx.settings = (size, scale, sampling_ratio, aligned, threads, tuple(feat.shape))
        chunks = rois.chunk(threads)
        return torch.cat(_in_threads(
            lambda r: roi_align(feat, r, size, scale, sampling_ratio, aligned), chunks))

    @staticmethod
    def backward(ctx, grad: Tensor):
        (rois,) = ctx.saved_tensors
        size, scale, sampling_ratio, aligned, threads, shape = ctx.settings
        pairs = list(zip(grad.contiguous().chunk(threads), rois.chunk(threads)))

        def chunk_grad(pair: tuple[Tensor, Tensor]) -> Tensor:
            return torch.ops.torchvision._roi_align_backward(
                pair[0], pair[1], scale, size[0], size[1], *shape, sampling_ratio, aligned)

        parts = _in_threads(chunk_grad, pairs)
        total = parts[0]
        for part in parts[1:]:
            total.add_(part)
        return total, None, None, None, None, None, None


def threaded_roi_align(feat: Tensor, rois: Tensor, output_size: tuple[int, int],
                       spatial_scale: float, sampling_ratio: int, aligned: bool) -> Tensor:
    """``torchvision.ops.roi_align`` of the NCHW (B, C, H, W) ``feat`` at the (K, 5) ``rois``
    -> (K, C, *output_size), the RoIs shared among torch's CPU threads (see the module)."""
    threads = _threads_for(feat, rois)
    if threads == 1:
        return roi_align(feat, rois, output_size, spatial_scale, sampling_ratio, aligned)
    # Without autograd, apply() runs the forward alone.
    return _ThreadedRoIAlign.apply(feat, rois, tuple(output_size), spatial_scale,
                                   sampling_ratio, aligned, threads)
