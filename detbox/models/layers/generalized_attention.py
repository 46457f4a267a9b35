"""Generalized spatial attention (Zhu et al., "An Empirical Study of Spatial Attention
Mechanisms in Deep Networks", 2019).

The paper writes Transformer attention between a query position ``q`` and a key position ``k``
as the sum of four terms, each of which can be switched on or off:

- bit 0, query and key content: ``z_q^T W_q^T W_k x_k`` (the Transformer's term);
- bit 1, query content and relative position: ``z_q^T W_q^T V R(k - q)``;
- bit 2, key content only: ``u^T W_k x_k`` (a learned vector ``u`` per head: one saliency map
  shared by every query, the term the paper finds does most of the work in detection);
- bit 3, relative position only: ``v^T V R(k - q)``.

``attention_type`` is the 4-character string of those bits, in that order ("0010": key content
only). ``R`` is a sinusoidal encoding of the vertical and horizontal offsets (in input pixels),
each half of a head's query/key dimension seeing one direction. The attention-weighted values
are projected by a 1x1 conv that starts at zero, so a new block is the identity and an
ImageNet network it is plugged into computes what it computed before.
"""

from __future__ import annotations

import math
from typing import Annotated

import torch
from torch import Tensor, nn

from detbox.errors import ConfigError
from detbox.registry import MODELS
from detbox.typecheck import Positive, Range

__all__ = ["GeneralizedAttention", "relative_position_encoding"]


def relative_position_encoding(
    num_queries: int, q_stride: int, num_keys: int, kv_stride: int, dim: int,
    magnitude: float = 1.0, wave_length: float = 1000.0,
) -> Tensor:
    """Sinusoidal encoding of the offsets between query and key positions along one axis.

    Query ``i`` sits at input pixel ``i * q_stride``, key ``j`` at ``j * kv_stride``; the offset
    ``(i * q_stride - j * kv_stride) * magnitude`` is encoded by ``dim / 2`` sines and as many
    cosines of geometrically spaced frequencies.

    Returns:
        (num_queries, num_keys, dim).
    """
    offsets = (torch.arange(num_queries, dtype=torch.float32)[:, None] * q_stride
               - torch.arange(num_keys, dtype=torch.float32)[None, :] * kv_stride) * magnitude
    half = dim // 2
    freqs = wave_length ** (-torch.arange(half, dtype=torch.float32) / half)
    angles = offsets[..., None] * freqs
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


@MODELS.register
class GeneralizedAttention(nn.Module):
    """Multi-head spatial attention whose energy is a chosen sum of the paper's four terms.

    Args:
        in_channels: channels C of the input (set by the network it is plugged into); they
            split over ``num_heads`` heads of ``C / num_heads`` query/key/value channels.
        spatial_range: keys farther than this many input pixels from the query (in either
            direction) are ignored; -1: every key (global attention, the paper's choice).
        num_heads: attention heads.
        position_embedding_dim: size of the sinusoidal encoding of each axis' offset before
            its projection; -1: ``in_channels``.
        position_magnitude: factor on the offsets before encoding.
        kv_stride: keys and values are taken every ``kv_stride`` pixels (2 in the paper's
            detection runs: a quarter of the cost).
        q_stride: queries are taken every ``q_stride`` pixels; the output is then upsampled.
        attention_type: which of the four terms make the energy, as four '0'/'1' characters
            (query-key content, query-relative position, key content, relative position).

    Shapes: (B, C, H, W) -> (B, C, H, W).
    """

    def __init__(
        self,
        *,
        in_channels: Annotated[int, Positive],
        spatial_range: Annotated[int, Range(ge=-1)] = -1,
        num_heads: Annotated[int, Positive] = 8,
        position_embedding_dim: Annotated[int, Range(ge=-1)] = -1,
        position_magnitude: Annotated[float, Positive] = 1.0,
        kv_stride: Annotated[int, Positive] = 2,
        q_stride: Annotated[int, Positive] = 1,
        attention_type: str = "1111",
    ) -> None:
        super().__init__()
        if len(attention_type) != 4 or set(attention_type) - {"0", "1"} \
                or "1" not in attention_type:
            raise ConfigError("GeneralizedAttention attention_type must be four '0'/'1' "
                              f"characters with at least one '1', got {attention_type!r}")
        if in_channels % num_heads:
            raise ConfigError(f"GeneralizedAttention: in_channels={in_channels} do not split "
                              f"into num_heads={num_heads}")
        self.terms = tuple(bit == "1" for bit in attention_type)
        self.attention_type = attention_type
        self.in_channels = in_channels
        self.num_heads = num_heads
        self.head_dim = in_channels // num_heads
        self.spatial_range = spatial_range
        self.kv_stride = kv_stride
        self.q_stride = q_stride
        self.position_magnitude = position_magnitude
        with_position = self.terms[1] or self.terms[3]
        if with_position and self.head_dim % 2:
            raise ConfigError("GeneralizedAttention position terms need an even number of "
                              f"channels per head, got {self.head_dim}")
        self.position_embedding_dim = (position_embedding_dim if position_embedding_dim > 0
                                       else in_channels)
        if with_position and self.position_embedding_dim % 4:
            raise ConfigError("GeneralizedAttention position_embedding_dim must divide by 4, "
                              f"got {self.position_embedding_dim}")
        self._build_layers(with_position)

    def _build_layers(self, with_position: bool) -> None:
        c, half = self.in_channels, self.head_dim // 2
        if self.terms[0] or self.terms[1]:
            self.query_conv = nn.Conv2d(c, c, 1, bias=False)
            nn.init.kaiming_uniform_(self.query_conv.weight, a=1)
        if self.terms[0] or self.terms[2]:
            self.key_conv = nn.Conv2d(c, c, 1, bias=False)
            nn.init.kaiming_uniform_(self.key_conv.weight, a=1)
        if self.terms[2]:
            self.key_bias = nn.Parameter(torch.zeros(self.num_heads, self.head_dim))
        if with_position:
            dim = self.position_embedding_dim // 2
            self.position_fc_y = nn.Linear(dim, half * self.num_heads, bias=False)
            self.position_fc_x = nn.Linear(dim, half * self.num_heads, bias=False)
        if self.terms[3]:
            self.position_bias = nn.Parameter(torch.zeros(self.num_heads, self.head_dim))
        self.value_conv = nn.Conv2d(c, c, 1, bias=False)
        nn.init.kaiming_uniform_(self.value_conv.weight, a=1)
        self.out_conv = nn.Conv2d(c, c, 1)
        nn.init.zeros_(self.out_conv.weight)
        nn.init.zeros_(self.out_conv.bias)

    def _heads(self, x: Tensor) -> Tensor:
        """(B, C, h, w) -> (B, heads, h*w, C / heads)."""
        b, _, h, w = x.shape
        return x.reshape(b, self.num_heads, self.head_dim, h * w).transpose(2, 3)

    def _position_codes(self, hq: int, wq: int, hk: int, wk: int, ref: Tensor
                        ) -> tuple[Tensor, Tensor]:
        """Projected encodings (heads, hq, hk, d/2) and (heads, wq, wk, d/2)."""
        codes = []
        for fc, nq, nk in ((self.position_fc_y, hq, hk), (self.position_fc_x, wq, wk)):
            enc = relative_position_encoding(nq, self.q_stride, nk, self.kv_stride,
                                             self.position_embedding_dim // 2,
                                             self.position_magnitude).to(ref)
            codes.append(fc(enc).reshape(nq, nk, self.num_heads, -1).permute(2, 0, 1, 3))
        return codes[0], codes[1]

    def energy(self, x_q: Tensor, x_kv: Tensor) -> Tensor:
        """Attention logits (B, heads, hq*wq, hk*wk) of the selected terms, over sqrt(d)."""
        b, _, hq, wq = x_q.shape
        hk, wk = x_kv.shape[-2:]
        energy = x_q.new_zeros(b, self.num_heads, hq, wq, hk, wk)
        query = self._heads(self.query_conv(x_q)) if hasattr(self, "query_conv") else None
        key = self._heads(self.key_conv(x_kv)) if hasattr(self, "key_conv") else None
        if self.terms[0]:
            energy += (query @ key.transpose(2, 3)).view_as(energy)
        if self.terms[2]:
            key_term = torch.einsum("nd,bnkd->bnk", self.key_bias, key)
            energy += key_term.view(b, self.num_heads, 1, 1, hk, wk)
        if self.terms[1] or self.terms[3]:
            pos_y, pos_x = self._position_codes(hq, wq, hk, wk, x_q)
            half = self.head_dim // 2
        if self.terms[1]:
            q = query.reshape(b, self.num_heads, hq, wq, 2, half)
            energy += torch.einsum("bnijd,nikd->bnijk", q[..., 0, :], pos_y)[..., None]
            energy += torch.einsum("bnijd,njld->bnijl", q[..., 1, :], pos_x)[..., None, :]
        if self.terms[3]:
            bias_y, bias_x = self.position_bias[:, :half], self.position_bias[:, half:]
            term_y = torch.einsum("nd,nikd->nik", bias_y, pos_y)
            term_x = torch.einsum("nd,njld->njl", bias_x, pos_x)
            energy += term_y[None, :, :, None, :, None] + term_x[None, :, None, :, None, :]
        if self.spatial_range >= 0:
            energy = energy.masked_fill(~self._local_mask(hq, wq, hk, wk, x_q.device),
                                        torch.finfo(energy.dtype).min)
        return energy.reshape(b, self.num_heads, hq * wq, hk * wk) / math.sqrt(self.head_dim)

    def _local_mask(self, hq: int, wq: int, hk: int, wk: int, device: torch.device) -> Tensor:
        """(hq, wq, hk, wk) True where the key is within ``spatial_range`` of the query."""
        def near(nq: int, nk: int) -> Tensor:
            q = torch.arange(nq, device=device)[:, None] * self.q_stride
            k = torch.arange(nk, device=device)[None, :] * self.kv_stride
            return (q - k).abs() <= self.spatial_range
        return near(hq, hk)[:, None, :, None] & near(wq, wk)[None, :, None, :]

    def forward(self, x: Tensor) -> Tensor:
        """(B, C, H, W) -> x + out_conv(attention-weighted values), (B, C, H, W)."""
        b, c, h, w = x.shape
        x_q = x[..., ::self.q_stride, ::self.q_stride]
        x_kv = x[..., ::self.kv_stride, ::self.kv_stride]
        attention = self.energy(x_q, x_kv).softmax(dim=-1)
        out = attention @ self._heads(self.value_conv(x_kv))  # (B, heads, hq*wq, d)
        out = out.transpose(2, 3).reshape(b, c, *x_q.shape[-2:])
        if self.q_stride > 1:
            out = nn.functional.interpolate(out, size=(h, w), mode="bilinear",
                                            align_corners=False)
        return x + self.out_conv(out)

    def extra_repr(self) -> str:
        return (f"in_channels={self.in_channels}, num_heads={self.num_heads}, "
                f"attention_type={self.attention_type!r}, kv_stride={self.kv_stride}, "
                f"spatial_range={self.spatial_range}")
