"""Making a backend detector: export the graphs, open them with the runtime, check parity."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torch import nn

from detbox.deploy.backends.detector import BackendDetector
from detbox.deploy.backends.graphs import SUPPORTED, export_parts, unsupported_reason
from detbox.deploy.backends.parity import check_parity
from detbox.deploy.backends.runtimes import BACKENDS, open_session
from detbox.errors import ConfigError, DetboxError

__all__ = ["BACKEND_CHOICES", "backend_detector", "check_backend", "init_backend_detector"]

BACKEND_CHOICES = ("pytorch", *BACKENDS)


def check_backend(backend: str, detector: nn.Module | None = None) -> None:
    """A one-line error for an unknown backend, or one that cannot run ``detector``."""
    if backend not in BACKENDS:
        raise ConfigError(f"unknown backend {backend!r}; choose one of "
                          f"{', '.join(BACKEND_CHOICES)}")
    if detector is not None:
        reason = unsupported_reason(detector)
        if reason is not None:
            raise DetboxError(f"--backend {backend}: {reason}; it supports {SUPPORTED} "
                              "(see docs/tools.md, Exported backends)")


def backend_detector(
    detector: nn.Module, backend: str, *, folder: str | os.PathLike | None = None,
    threads: int | None = None, check: bool = True,
) -> BackendDetector:
    """Export the plain CPU ``detector``'s graphs, open them with ``backend`` and check them.

    Args:
        detector: a loaded detector (``cfg`` and ``dataset_meta`` set), not in the fast path.
        backend: ``onnxruntime`` or ``openvino``.
        folder: keep the ``.onnx`` graphs here (default: a temporary folder, removed once
            the runtime has loaded them).
        threads: runtime threads (default: as many as torch uses).
        check: compare with PyTorch on a sample image (:func:`check_parity`); a difference
            beyond tolerance raises a one-line DetboxError. The check is kept in
            ``runner.parity``.

    Raises:
        ConfigError: unknown backend. DetboxError: unsupported model, or parity failed.
    """
    check_backend(backend, detector)
    detector = detector.cpu().eval()
    with tempfile.TemporaryDirectory(prefix="detbox_graphs_") as scratch:
        paths = export_parts(detector, Path(folder) if folder is not None else scratch)
        sessions = {name: open_session(backend, path, threads) for name, path in paths.items()}
    runner = BackendDetector(detector, sessions, backend)
    if check:
        runner.parity = check_parity(detector, runner)
        runner.parity.raise_if_failed()
    return runner


def init_backend_detector(
    config: str | os.PathLike | Mapping[str, Any], checkpoint: str | os.PathLike, backend: str,
    cfg_options: Mapping[str, Any] | None = None, tta: bool | None = None, **kwargs: Any,
) -> nn.Module:
    """``init_detector`` for a backend: the plain model on the CPU, exported, opened with
    ``backend`` and parity-checked (``backend_detector``'s keyword arguments pass through);
    wrapped for TTA as ``init_detector`` would."""
    from detbox.apis.inference import init_detector
    from detbox.apis.tta import maybe_wrap_for_tta

    check_backend(backend)
    model = init_detector(config, checkpoint, "cpu", cfg_options, tta=False, fast=False)
    runner = backend_detector(model, backend, **kwargs)
    return maybe_wrap_for_tta(runner, model.cfg, tta)
