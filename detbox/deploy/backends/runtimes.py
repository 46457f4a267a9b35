"""Runtime sessions: one exported ONNX graph run by onnxruntime or OpenVINO on the CPU.

Both take and give float32 NumPy arrays by position, so the detector that strings graphs
together (:mod:`detbox.deploy.backends.detector`) does not care which runtime runs them.
Settings follow what makes each runtime fastest at full float32 precision: onnxruntime with
all graph optimisations and as many intra-op threads as torch uses; OpenVINO compiled for the
CPU with the latency hint and ``f32`` inference precision (its default on CPUs with bfloat16
units would change the detections).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Protocol

import numpy as np
import torch

from detbox.errors import ConfigError, DetboxError

__all__ = ["BACKENDS", "GraphSession", "OnnxRuntimeSession", "OpenVINOSession", "open_session"]

#: The runtimes ``--backend`` accepts besides ``pytorch``, and the package each needs.
BACKENDS = {"onnxruntime": "onnxruntime", "openvino": "openvino"}


class GraphSession(Protocol):
    """One compiled graph: ``run(inputs) -> outputs``, float32 arrays in export order."""

    backend: str

    def run(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]: ...


def _threads(threads: int | None) -> int:
    return int(threads) if threads else torch.get_num_threads()


def _import(backend: str):
    try:
        return __import__(BACKENDS[backend])
    except ImportError as exc:
        raise DetboxError(f"--backend {backend} needs the {BACKENDS[backend]} package: pip "
                          "install 'detbox[tools]'") from exc


class OnnxRuntimeSession:
    """An onnxruntime ``InferenceSession`` on the CPU, all graph optimisations on.

    Args:
        path: the ``.onnx`` file.
        threads: intra-op threads (None: as many as torch uses).
    """

    backend = "onnxruntime"

    def __init__(self, path: str | os.PathLike, threads: int | None = None) -> None:
        ort = _import("onnxruntime")
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = _threads(threads)
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(path), sess_options=options,
                                            providers=["CPUExecutionProvider"])
        self.input_names = [i.name for i in self.session.get_inputs()]

    def run(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        feeds = {name: np.ascontiguousarray(x, dtype=np.float32)
                 for name, x in zip(self.input_names, inputs)}
        return self.session.run(None, feeds)


class OpenVINOSession:
    """An OpenVINO model compiled for the CPU (latency hint, float32 precision).

    Args:
        path: the ``.onnx`` file (OpenVINO reads it directly).
        threads: inference threads (None: as many as torch uses).
    """

    backend = "openvino"

    def __init__(self, path: str | os.PathLike, threads: int | None = None) -> None:
        ov = _import("openvino")
        core = ov.Core()
        compiled = core.compile_model(str(path), "CPU", {
            "PERFORMANCE_HINT": "LATENCY",
            "INFERENCE_PRECISION_HINT": "f32",
            "INFERENCE_NUM_THREADS": _threads(threads),
        })
        self.request = compiled.create_infer_request()
        self.num_outputs = len(compiled.outputs)

    def run(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        self.request.infer([np.ascontiguousarray(x, dtype=np.float32) for x in inputs])
        # The request reuses its output buffers on the next call: copy them out.
        return [np.array(self.request.get_output_tensor(i).data)
                for i in range(self.num_outputs)]


def open_session(backend: str, path: str | os.PathLike,
                 threads: int | None = None) -> GraphSession:
    """A session of ``backend`` (``onnxruntime`` or ``openvino``) for the graph at ``path``."""
    if backend == "onnxruntime":
        return OnnxRuntimeSession(path, threads)
    if backend == "openvino":
        return OpenVINOSession(path, threads)
    raise ConfigError(f"unknown backend {backend!r}; choose pytorch, "
                      f"{', '.join(BACKENDS)}")
