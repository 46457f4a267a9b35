"""Uploaded image bytes -> the RGB pixels the model sees, or a client error naming the problem.

The decode is the one ``detbox infer`` uses on a file (``LoadImage``: EXIF orientation applied,
any Pillow mode to RGB, 16-bit scaled), so the service and the command give the same
detections for the same bytes. Everything a client can get wrong is checked in order of cost:
the byte count, the format and the pixel count from the header (before any pixel is decoded,
so a small file that claims a huge canvas is refused unread), the mode, then the decode itself.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from detbox.data.transforms.loading import pil_to_rgb_array

__all__ = ["UploadError", "decode_upload", "DECODABLE_MODES"]

# Pillow modes that ``pil_to_rgb_array`` turns into RGB (CMYK and YCbCr by Pillow's conversion,
# 16/32-bit and float by scaling); anything else is refused by name.
DECODABLE_MODES = ("1", "L", "LA", "La", "P", "PA", "RGB", "RGBA", "RGBa", "RGBX", "CMYK",
                   "YCbCr", "I;16", "I;16B", "I;16L", "I;16N", "I", "F")


@dataclass
class UploadError(Exception):
    """A client's image that cannot be used; ``status`` is the HTTP status to answer with.

    Attributes:
        status: 400 (empty, truncated, corrupt), 413 (too many bytes or pixels) or 415 (not an
            image, unsupported mode).
        code: a short machine-readable kind: ``empty``, ``too_many_bytes``, ``too_many_pixels``,
            ``not_an_image``, ``unsupported_mode``, ``truncated``, ``corrupt``.
        message: one line for people, naming the file.
    """

    status: int
    code: str
    message: str

    def __str__(self) -> str:
        return self.message


def decode_upload(data: bytes, name: str, *, max_bytes: int, max_pixels: int) -> np.ndarray:
    """(H, W, 3) uint8 RGB pixels of an uploaded image file, upright by its EXIF orientation.

    Args:
        data: the file's bytes.
        name: the file name the client gave (for the messages).
        max_bytes: larger files are refused (413).
        max_pixels: images whose header declares more pixels are refused before decoding (413).

    Raises:
        UploadError: the first problem found.
    """
    if not data:
        raise UploadError(400, "empty", f"{name}: the file is empty")
    if len(data) > max_bytes:
        raise UploadError(413, "too_many_bytes", f"{name}: {len(data)} bytes is more than the "
                          f"{max_bytes} this server accepts per image")
    pil = _open(data, name, max_pixels)
    with pil:
        width, height = pil.size
        if width * height > max_pixels:
            raise UploadError(413, "too_many_pixels", f"{name}: {width}x{height} pixels is more "
                              f"than the {max_pixels} this server accepts per image")
        if pil.mode not in DECODABLE_MODES:
            raise UploadError(415, "unsupported_mode", f"{name}: pixel mode {pil.mode} is not "
                              "supported; send RGB, greyscale, palette, CMYK or 16-bit images")
        try:
            pil.load()
            return pil_to_rgb_array(ImageOps.exif_transpose(pil))
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
            raise _decode_error(name, exc) from None


def _decode_error(name: str, exc: BaseException) -> UploadError:
    text = str(exc).lower()
    if "truncated" in text or "broken data stream" in text:
        return UploadError(400, "truncated", f"{name}: the image data is truncated (an "
                           "incomplete upload or file?)")
    return UploadError(400, "corrupt", f"{name}: cannot decode the image: {exc}")


def _open(data: bytes, name: str, max_pixels: int) -> Image.Image:
    """Open (header only: Pillow decodes pixels lazily).

    Pillow's own decompression-bomb error (past twice ``Image.MAX_IMAGE_PIXELS``) is refused
    here too; its warning is silenced, the caller checks ``max_pixels`` itself.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            return Image.open(io.BytesIO(data))
        except (UnidentifiedImageError, SyntaxError):
            raise UploadError(415, "not_an_image", f"{name}: not an image file Pillow can "
                              "read (JPEG, PNG, BMP, TIFF, WebP, GIF ...)") from None
        except Image.DecompressionBombError:
            raise UploadError(413, "too_many_pixels", f"{name}: the header declares more than "
                              f"{max_pixels} pixels (a decompression bomb?)") from None
        except (OSError, ValueError) as exc:
            raise _decode_error(name, exc) from None
