"""The CPU training fast path: channels-last feature maps and oneDNN GEMMs.

On a CPU, PyTorch's oneDNN convolutions run fastest on channels-last (NHWC) maps: an NCHW map
is reordered on the way in and out of every convolution, forward and backward. PyTorch also
gives every linear layer, and with one thread every unstrided 1x1 convolution, to its BLAS
GEMM, which on some CPUs (AMD EPYC with MKL) runs at half of oneDNN's speed. Training on CPU
therefore stores the model's 4-D weights channels-last (the maps follow) and routes those
layers to oneDNN (:func:`detbox.models.fused_conv.route_to_onednn`). The values computed are
the same up to float rounding; parameter names, checkpoints and the model's results do not
change. ``cpu_fast_path = False`` in a config trains the plain model.
"""

from __future__ import annotations

import torch
from torch import nn

from detbox.models.fused_conv import route_to_onednn

__all__ = ["prepare_cpu_training"]


def prepare_cpu_training(model: nn.Module, device: torch.device, enabled: bool = True
                         ) -> str | None:
    """Put ``model`` (already on ``device``) on the CPU training fast path, in place.

    Returns:
        The line for the run's log, or None where nothing changed (a GPU, or ``enabled``
        False).
    """
    if not enabled or device.type != "cpu":
        return None
    routed = route_to_onednn(model) if torch.backends.mkldnn.is_available() else 0
    model.to(memory_format=torch.channels_last)
    return (f"CPU fast path: channels-last maps, {routed} convolution / linear layers on oneDNN "
            "(cpu_fast_path=False trains the plain model)")
