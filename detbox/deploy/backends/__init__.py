"""Exported backends for CPU deployment: onnxruntime and OpenVINO running a detector's
networks, detbox's own code doing the rest (see docs/tools.md, "Exported backends").

    runner = init_backend_detector("configs/x.py", "model.pth", "openvino")
    inference_detector(runner, "image.jpg")
"""

from __future__ import annotations

from detbox.deploy.backends.build import (
    BACKEND_CHOICES,
    backend_detector,
    check_backend,
    init_backend_detector,
)
from detbox.deploy.backends.detector import BackendDetector
from detbox.deploy.backends.parity import ParityCheck, check_parity
from detbox.deploy.backends.runtimes import BACKENDS

__all__ = [
    "BACKENDS", "BACKEND_CHOICES", "BackendDetector", "ParityCheck", "backend_detector",
    "check_backend", "check_parity", "init_backend_detector",
]
