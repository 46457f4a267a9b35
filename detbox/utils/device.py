"""Choosing the device: CUDA when available, else CPU; an explicit choice is checked early."""

from __future__ import annotations

import torch

from detbox.errors import DetboxError


def resolve_device(name: str | None = None) -> torch.device:
    """``None``/``'auto'`` picks CUDA when available; a missing CUDA device is a clear error."""
    if name in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise DetboxError(
            f"--device '{name}' is not a device name (use cpu, cuda or cuda:N)"
        ) from exc
    if device.type == "cuda":
        count = torch.cuda.device_count()
        if count == 0:
            raise DetboxError(f"--device {name}: CUDA is not available here; use --device cpu")
        if device.index is not None and device.index >= count:
            raise DetboxError(
                f"--device {name}: only {count} CUDA device(s) exist (cuda:0..cuda:{count - 1})"
            )
    return device
