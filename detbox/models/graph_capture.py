"""Whether the model is being captured into a graph rather than run eagerly.

The CPU fast paths call private kernels (oneDNN's, NNPACK's), run work on other threads and
keep cached copies of tensors; none of that may enter a traced, exported or compiled graph,
where the plain ops must run instead.
"""

from __future__ import annotations

import torch

__all__ = ["capturing_graph"]


def capturing_graph() -> bool:
    """Being traced (``torch.jit.trace``), exported to ONNX or compiled (``torch.compile``)."""
    return (torch.jit.is_tracing() or torch.onnx.is_in_onnx_export()
            or torch.compiler.is_compiling())
