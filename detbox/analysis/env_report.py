"""What to paste into a bug report: versions, hardware, threads and the kernels torch uses."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
import sys
from typing import Any

import torch

import detbox

__all__ = ["PACKAGES", "collect_env", "format_env"]

PACKAGES = (
    "torch", "torchvision", "numpy", "Pillow", "pycocotools", "PyYAML", "tqdm", "scipy",
    "onnx", "onnxruntime", "matplotlib", "safetensors", "av",
)


def _package_version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _cpu_name() -> str:
    """The CPU model from /proc/cpuinfo (Linux), sysctl (macOS) or ``platform``."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    if sys.platform == "darwin":
        try:
            return subprocess.run(["sysctl", "-n", "machdep.cpu.brand_string"],
                                  capture_output=True, text=True, timeout=5).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            pass
    return platform.processor() or platform.machine()


def _cuda() -> dict[str, Any]:
    info: dict[str, Any] = {
        "CUDA available": torch.cuda.is_available(),
        "CUDA (torch built with)": torch.version.cuda or "none",
        "cuDNN": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else "none",
    }
    if torch.cuda.is_available():
        for index in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(index)
            info[f"GPU {index}"] = (f"{props.name}, {props.total_memory / 2**30:.1f} GiB, "
                                    f"compute capability {props.major}.{props.minor}")
        info["cudnn.benchmark"] = torch.backends.cudnn.benchmark
        info["cudnn.deterministic"] = torch.backends.cudnn.deterministic
        info["TF32 matmul"] = torch.backends.cuda.matmul.allow_tf32
        info["TF32 cuDNN"] = torch.backends.cudnn.allow_tf32
    return info


def _backends() -> dict[str, Any]:
    backends = torch.backends
    info: dict[str, Any] = {
        "MKL": backends.mkl.is_available(),
        "MKL-DNN (oneDNN)": backends.mkldnn.is_available(),
        "OpenMP": backends.openmp.is_available(),
        "MPS": backends.mps.is_available(),
        "CPU capability": backends.cpu.get_cpu_capability(),
        "float32 matmul precision": torch.get_float32_matmul_precision(),
        "deterministic algorithms": torch.are_deterministic_algorithms_enabled(),
        # Thread pools, the parallel backend and the MKL / oneDNN versions actually linked.
        "parallel info": torch.__config__.parallel_info().strip(),
    }
    return info


def collect_env() -> dict[str, dict[str, Any]]:
    """Sections of ``name -> value``: system, PyTorch, CUDA, backends, packages."""
    threads_env = {k: os.environ[k] for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS",
                                              "CUDA_VISIBLE_DEVICES") if k in os.environ}
    system = {
        "detbox": detbox.__version__,
        "Python": f"{platform.python_version()} ({sys.executable})",
        "platform": platform.platform(),
        "CPU": _cpu_name(),
        "CPU cores (logical)": os.cpu_count(),
        **threads_env,
    }
    pytorch = {
        "torch": torch.__version__,
        "torch threads (intra-op)": torch.get_num_threads(),
        "torch threads (inter-op)": torch.get_num_interop_threads(),
        "debug build": torch.version.debug,
    }
    return {
        "system": system,
        "PyTorch": pytorch,
        "CUDA": _cuda(),
        "backends": _backends(),
        "packages": {name: _package_version(name) for name in PACKAGES},
        "build configuration": {"torch.__config__.show()": torch.__config__.show().strip()},
    }


def format_env(env: dict[str, dict[str, Any]], with_build: bool = False) -> str:
    """Aligned ``name: value`` lines under a heading per section."""
    lines = []
    for section, values in env.items():
        if section == "build configuration" and not with_build:
            continue
        lines.append(f"[{section}]")
        width = max((len(k) for k in values), default=0)
        for key, value in values.items():
            text = str(value)
            if "\n" in text:
                lines.append(f"{key}:")
                lines.extend(f"    {line}" for line in text.expandtabs(4).splitlines())
            else:
                lines.append(f"{key:<{width}}  {text}")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"
