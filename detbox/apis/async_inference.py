"""``async_inference_detector``: inference that lets other coroutines run meanwhile.

The model runs in a worker thread (PyTorch releases the GIL inside its kernels), so an asyncio
server can keep accepting requests, reading frames or writing responses while a batch is being
detected. Several calls may run at once on the default executor; pass a single-worker
``ThreadPoolExecutor`` to run one batch at a time (e.g. to bound GPU memory).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Sequence
from concurrent.futures import Executor

from torch import nn

from detbox.apis.inference import ImageInput, inference_detector
from detbox.structures import Instances

__all__ = ["async_inference_detector"]


async def async_inference_detector(
    model: nn.Module,
    images: ImageInput | Sequence[ImageInput],
    batch_size: int = 4,
    executor: Executor | None = None,
) -> Instances | list[Instances]:
    """Await ``inference_detector(model, images, batch_size)`` run in ``executor``.

    Args:
        model: a detector from ``init_detector``.
        images: a path or (H, W, 3) uint8 RGB array, or a list of them.
        batch_size: images per forward pass.
        executor: where the model runs; the event loop's default thread pool when None.

    Returns:
        As ``inference_detector``: one ``Instances`` (original image coordinates) per image.
    """
    loop = asyncio.get_running_loop()
    call = functools.partial(inference_detector, model, images, batch_size)
    return await loop.run_in_executor(executor, call)
