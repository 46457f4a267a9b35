"""Mixed precision: which autocast to run the forward pass under, and whether to scale losses.

``torch.autocast`` runs matrix multiplications and convolutions in a 16-bit type while keeping
reductions and losses in float32. bfloat16 has float32's range, so its gradients need no
scaling; float16 does not, so small gradients underflow unless the loss is multiplied by a
large factor first. ``torch.amp.GradScaler`` does that and, when the scaled gradients overflow,
skips that optimizer step and lowers the factor: with fp16 an occasional skipped step is normal,
not a training failure.
"""

from __future__ import annotations

import contextlib
import functools
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from detbox.errors import ConfigError
from detbox.registry import closest_match

__all__ = ["AmpSettings", "build_amp", "cpu_has_native_bf16"]

_DTYPES = {"fp16": torch.float16, "float16": torch.float16,
           "bf16": torch.bfloat16, "bfloat16": torch.bfloat16}
_KEYS = ("dtype", "enabled", "init_scale", "growth_interval")


@dataclass(frozen=True)
class AmpSettings:
    """Resolved mixed-precision settings of one run.

    Attributes:
        device_type: ``'cuda'`` or ``'cpu'``, the autocast device type.
        dtype: the 16-bit type, or None when mixed precision is off.
        init_scale: the fp16 loss scaler's first factor.
        growth_interval: steps without overflow before the scaler doubles its factor.
    """

    device_type: str
    dtype: torch.dtype | None = None
    init_scale: float = 2.0**16
    growth_interval: int = 2000

    @property
    def enabled(self) -> bool:
        return self.dtype is not None

    @property
    def uses_scaler(self) -> bool:
        """fp16 needs loss scaling; bf16 (float32's exponent range) does not."""
        return self.dtype == torch.float16

    def autocast(self) -> contextlib.AbstractContextManager:
        """The context to run a forward pass in (a no-op when mixed precision is off)."""
        if not self.enabled:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device_type, dtype=self.dtype)

    def make_scaler(self) -> torch.amp.GradScaler | None:
        """A dynamic loss scaler for fp16, else None."""
        if not self.uses_scaler:
            return None
        return torch.amp.GradScaler(self.device_type, init_scale=self.init_scale,
                                    growth_interval=self.growth_interval)

    def describe(self) -> str:
        if not self.enabled:
            return "mixed precision off (float32)"
        name = "fp16" if self.dtype == torch.float16 else "bf16"
        scaling = (f", dynamic loss scaling from {self.init_scale:g}" if self.uses_scaler
                   else ", no loss scaling")
        native = ""
        if self.device_type == "cpu" and self.dtype == torch.bfloat16:
            native = (" (native bf16 instructions)" if cpu_has_native_bf16()
                      else " (emulated: this CPU has no native bf16, expect it slower than fp32)")
        return f"mixed precision: {name} autocast on {self.device_type}{scaling}{native}"


@functools.cache
def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bfloat16 in hardware (AVX512-BF16 or AMX), as oneDNN needs
    for fast bf16 convolutions and matrix products; without it PyTorch emulates bf16 on float32
    units and autocast is usually slower than plain float32."""
    check = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    if check is not None and torch.backends.mkldnn.is_available():
        with contextlib.suppress(RuntimeError):
            return bool(check())
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def _warn_if_emulated(dtype: torch.dtype, device: torch.device) -> None:
    if dtype == torch.bfloat16 and device.type == "cpu" and not cpu_has_native_bf16():
        warnings.warn(
            "amp: this CPU has no native bfloat16 instructions (AVX512-BF16 or AMX), so bf16 "
            "autocast is emulated and usually slower than float32; train without --amp here",
            stacklevel=3)


def _resolve_dtype(name: Any, device: torch.device) -> torch.dtype:
    if name in (None, "auto"):
        return torch.float16 if device.type == "cuda" else torch.bfloat16
    if name not in _DTYPES:
        match = closest_match(str(name), list(_DTYPES))
        hint = f" Did you mean '{match}'?" if match else ""
        raise ConfigError(f"amp dtype {name!r} is not supported.{hint} Choose 'fp16', 'bf16' "
                          "or 'auto' (fp16 on a GPU, bf16 on a CPU)")
    dtype = _DTYPES[name]
    if dtype == torch.float16 and device.type != "cuda":
        raise ConfigError(f"amp dtype 'fp16' needs a CUDA GPU (training on {device}); use "
                          "amp=dict(dtype='bf16') on a CPU")
    if dtype == torch.bfloat16 and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ConfigError(f"amp dtype 'bf16' is not supported by {torch.cuda.get_device_name()}; "
                          "use amp=dict(dtype='fp16')")
    return dtype


def build_amp(cfg: Mapping[str, Any] | bool | None, device: torch.device) -> AmpSettings:
    """Resolve the ``amp`` config for ``device``.

    Args:
        cfg: None/False (off), True (``'auto'`` dtype) or ``dict(dtype='fp16'|'bf16'|'auto',
            enabled=True, init_scale=65536.0, growth_interval=2000)``; the last two tune the
            fp16 loss scaler.
        device: the training device.

    Raises:
        ConfigError: an unknown key or dtype, or a dtype the device cannot run.
    """
    if cfg is None or cfg is False:
        return AmpSettings(device.type)
    cfg = {} if cfg is True else dict(cfg)
    for key in cfg:
        if key not in _KEYS:
            match = closest_match(key, list(_KEYS))
            hint = f" Did you mean '{match}'?" if match else ""
            raise ConfigError(f"amp got an unknown key '{key}'.{hint} Valid keys: "
                              f"{', '.join(_KEYS)}")
    if not cfg.get("enabled", True):
        return AmpSettings(device.type)
    dtype = _resolve_dtype(cfg.get("dtype", "auto"), device)
    _warn_if_emulated(dtype, device)
    return AmpSettings(
        device_type=device.type, dtype=dtype,
        init_scale=float(cfg.get("init_scale", 2.0**16)),
        growth_interval=int(cfg.get("growth_interval", 2000)),
    )
