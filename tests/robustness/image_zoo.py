"""A folder of awkward-but-valid and broken image files, written on the fly (a few KB)."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

# file name -> (height, width) as the model must see it (upright).
AWKWARD = {
    "gray.png": (24, 32), "gray_alpha.png": (24, 32), "rgba.png": (24, 32),
    "sixteen_bit.png": (24, 32), "palette.png": (24, 32), "cmyk.jpg": (24, 32),
    "one_bit.png": (24, 32), "exif_rotated.jpg": (32, 24), "with space.png": (24, 32),
    "ünïcødé.png": (24, 32), "UPPER.JPG": (24, 32), "Upper.PNG": (24, 32),
    "photo.webp": (24, 32), "photo.bmp": (24, 32), "photo.tif": (24, 32),
}
# file name -> the reason ImageReadError gives.
BROKEN = {
    "empty.jpg": "empty file", "text.jpg": "not an image", "truncated.jpg": "truncated",
    "truncated.png": "truncated", "huge.png": "too large",
}


def _pixels(height: int = 24, width: int = 32, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def huge_png_header(width: int = 100_000, height: int = 100_000) -> bytes:
    """A PNG that declares ``width`` x ``height`` pixels and holds none: Pillow's
    decompression-bomb guard refuses it on open, before any pixel is allocated."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IEND", b"")


def _truncated(path: Path, fmt: str) -> None:
    Image.fromarray(_pixels(48, 64)).save(path, fmt)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def write_awkward(folder: Path) -> None:
    """Every ``AWKWARD`` file, valid, in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    rgb = Image.fromarray(_pixels())
    rgb.convert("L").save(folder / "gray.png")
    rgb.convert("LA").save(folder / "gray_alpha.png")
    rgb.convert("RGBA").save(folder / "rgba.png")
    deep = (np.asarray(rgb.convert("L"), dtype=np.uint16) * 257)
    Image.fromarray(deep).save(folder / "sixteen_bit.png")  # mode I;16
    rgb.convert("P").save(folder / "palette.png")
    rgb.convert("CMYK").save(folder / "cmyk.jpg")
    rgb.convert("1").save(folder / "one_bit.png")
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to view: 32x24 stored, 24x32 shown
    rgb.save(folder / "exif_rotated.jpg", exif=exif)
    for name in ("with space.png", "ünïcødé.png", "UPPER.JPG", "Upper.PNG", "photo.webp",
                 "photo.bmp", "photo.tif"):
        fmt = {".JPG": "JPEG", ".PNG": "PNG"}.get(Path(name).suffix)
        rgb.save(folder / name, fmt)


def write_broken(folder: Path) -> None:
    """Every ``BROKEN`` file in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "text.jpg").write_text("not a picture, a shopping list\n")
    _truncated(folder / "truncated.jpg", "JPEG")
    _truncated(folder / "truncated.png", "PNG")
    (folder / "huge.png").write_bytes(huge_png_header())


def write_zoo(folder: Path) -> Path:
    """``folder`` with all awkward and broken files; returns it."""
    write_awkward(folder)
    write_broken(folder)
    return folder
