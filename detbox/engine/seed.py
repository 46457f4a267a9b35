"""Seeding and capturing the random number generators that training draws from.

Augmentations draw from Python's ``random``, numpy's global generator and torch's; dropout and
samplers draw from torch's. Exact resume needs all of them back as they were at the checkpoint,
so their states are captured here as plain lists, ints and tensors: types that
``torch.load(..., weights_only=True)`` accepts.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch

from detbox.engine.dist import broadcast_object

__all__ = [
    "get_rng_state",
    "make_seed",
    "preserved_rng_state",
    "set_random_seed",
    "set_rng_state",
]

_MAX_SEED = 2**31 - 1


def make_seed() -> int:
    """A fresh random seed, drawn on rank 0 and shared by every rank."""
    return int(broadcast_object(int.from_bytes(os.urandom(4), "little") & _MAX_SEED))


def set_random_seed(seed: int, deterministic: bool = False) -> int:
    """Seed Python, numpy and torch (CPU and every GPU) with ``seed``.

    Args:
        seed: any int; numpy only takes 32 bits, so it gets ``seed % 2**32``.
        deterministic: also ask torch for deterministic kernels (warning, not failing, where an
            operation has none) and turn off cuDNN autotuning. ``False`` leaves those flags as
            they are, so it never undoes an earlier request.

    Returns:
        The seed, for logging.
    """
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        # cuBLAS needs a fixed workspace to be deterministic; it is read when CUDA starts.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
    return seed


def get_rng_state() -> dict[str, Any]:
    """The state of every global generator, as weights-only-loadable types.

    Returns:
        ``{'python': [version, [625 ints], gauss_next], 'numpy': {...}, 'torch': uint8 tensor}``
        plus ``'cuda'`` (uint8 tensor of the current GPU) once CUDA has been used.
    """
    version, internal, gauss_next = random.getstate()
    name, keys, pos, has_gauss, cached_gaussian = np.random.get_state(legacy=True)
    state: dict[str, Any] = {
        "python": [int(version), [int(k) for k in internal], gauss_next],
        "numpy": {
            "name": str(name),
            "keys": keys.tolist(),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached_gaussian),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore the generators captured by :func:`get_rng_state`.

    A CUDA state is restored only when CUDA is available, so a GPU checkpoint resumes on CPU
    (with CPU randomness exact, GPU randomness then unseeded by it).
    """
    version, internal, gauss_next = state["python"]
    random.setstate((int(version), tuple(int(k) for k in internal), gauss_next))
    numpy_state = state["numpy"]
    np.random.set_state((
        numpy_state["name"],
        np.asarray(numpy_state["keys"], dtype=np.uint32),
        numpy_state["pos"],
        numpy_state["has_gauss"],
        numpy_state["cached_gaussian"],
    ))
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"].cpu())


@contextmanager
def preserved_rng_state() -> Iterator[None]:
    """Run a block (e.g. evaluation) without changing what training draws afterwards.

    Evaluation may create DataLoader iterators, which draw seeds from torch's generator; keeping
    it out of the training stream makes a resumed run match an uninterrupted one whether or not
    evaluation ran in between.
    """
    state = get_rng_state()
    try:
        yield
    finally:
        set_rng_state(state)
