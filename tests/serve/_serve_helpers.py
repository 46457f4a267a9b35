"""Images for the service tests: good ones in several formats and every kind of bad one."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
from PIL import Image


def image_bytes(height: int = 60, width: int = 80, seed: int = 0, fmt: str = "PNG",
                mode: str = "RGB") -> bytes:
    """A random picture encoded as ``fmt`` in Pillow ``mode``."""
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    picture = Image.fromarray(pixels)
    if mode == "I;16":
        grey = np.asarray(picture.convert("L"), dtype=np.uint16) * 257
        picture = Image.fromarray(grey).convert("I;16")
    elif mode != "RGB":
        picture = picture.convert(mode)
    buffer = io.BytesIO()
    picture.save(buffer, fmt)
    return buffer.getvalue()


def png_claiming(width: int, height: int) -> bytes:
    """A tiny valid PNG whose header (IHDR) declares ``width`` x ``height`` pixels: a
    decompression bomb's shape without its size."""
    data = image_bytes(4, 4)
    start = data.index(b"IHDR")
    fields = struct.pack(">II", width, height) + data[start + 12:start + 17]
    chunk = b"IHDR" + fields
    patched = chunk + struct.pack(">I", zlib.crc32(chunk))
    return data[:start] + patched + data[start + 4 + 13 + 4:]
