"""CARAFE: content-aware reassembly of features (Wang et al., 2019), in plain PyTorch.

Each output pixel is a weighted sum over the ``k_up x k_up`` neighbourhood of its source pixel,
with weights predicted from the content around that source pixel (one kernel per output
sub-position), so upsampling adapts to the features instead of copying the nearest value.
"""

from __future__ import annotations

from typing import Annotated

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from detbox.errors import ConfigError
from detbox.registry import MODELS
from detbox.typecheck import Positive

__all__ = ["CARAFE", "carafe_reassemble"]


def carafe_reassemble(x: Tensor, kernels: Tensor, *, k_up: int, scale: int) -> Tensor:
    """Reassemble ``x`` with per-position kernels.

    Args:
        x: (B, C, H, W) source features.
        kernels: (B, k_up*k_up, scale*scale, H, W) normalised weights; kernel
            ``[:, :, s, i, j]`` makes output pixel ``(i*scale + s // scale, j*scale + s % scale)``
            from the ``k_up x k_up`` neighbourhood (zero padded) of source pixel ``(i, j)``,
            row-major.
        k_up: reassembly kernel size.
        scale: upsampling factor.

    Returns:
        (B, C, scale*H, scale*W).
    """
    b, c, h, w = x.shape
    patches = F.unfold(x, kernel_size=k_up, padding=k_up // 2).view(b, c, k_up * k_up, h, w)
    out = torch.einsum("bckhw,bkshw->bcshw", patches, kernels)
    return F.pixel_shuffle(out.reshape(b, c * scale * scale, h, w), scale)


@MODELS.register
class CARAFE(nn.Module):
    """Kernel prediction (compressor + content encoder) followed by reassembly.

    Args:
        channels: channels of the input (and of the output).
        scale: upsampling factor.
        k_up: reassembly kernel size (the neighbourhood of each source pixel).
        k_enc: content encoder kernel size.
        compressed_channels: channels after the 1x1 compressor.
    """

    def __init__(
        self,
        *,
        channels: Annotated[int, Positive],
        scale: Annotated[int, Positive] = 2,
        k_up: Annotated[int, Positive] = 5,
        k_enc: Annotated[int, Positive] = 3,
        compressed_channels: Annotated[int, Positive] = 64,
    ) -> None:
        super().__init__()
        if k_up % 2 == 0 or k_enc % 2 == 0:
            raise ConfigError(f"CARAFE kernels must be odd, got k_up={k_up}, k_enc={k_enc}")
        self.scale = scale
        self.k_up = k_up
        self.compressor = nn.Conv2d(channels, compressed_channels, 1)
        self.encoder = nn.Conv2d(compressed_channels, k_up * k_up * scale * scale, k_enc,
                                 padding=k_enc // 2)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """The paper's init: Xavier compressor, near-zero encoder (near-uniform kernels)."""
        nn.init.xavier_uniform_(self.compressor.weight)
        nn.init.zeros_(self.compressor.bias)
        nn.init.normal_(self.encoder.weight, std=0.001)
        nn.init.zeros_(self.encoder.bias)

    def kernels(self, x: Tensor) -> Tensor:
        """(B, C, H, W) -> softmax-normalised kernels (B, k_up*k_up, scale*scale, H, W)."""
        b, _, h, w = x.shape
        logits = self.encoder(self.compressor(x))
        # Encoder channel ``kk * scale**2 + s`` is kernel tap ``kk`` for sub-position ``s``: the
        # layout a pixel shuffle of the kernel map to (k_up**2, scale*H, scale*W) would use.
        logits = logits.view(b, self.k_up * self.k_up, self.scale * self.scale, h, w)
        return logits.softmax(dim=1)

    def forward(self, x: Tensor) -> Tensor:
        """(B, C, H, W) -> (B, C, scale*H, scale*W)."""
        return carafe_reassemble(x, self.kernels(x), k_up=self.k_up, scale=self.scale)
