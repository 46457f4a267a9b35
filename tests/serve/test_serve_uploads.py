"""Uploaded bytes -> pixels (the same as ``detbox infer`` reads from a file) or a named error."""

from __future__ import annotations

import numpy as np
import pytest

from detbox.data.inference import load_image, upright_array
from detbox.serve.uploads import UploadError, decode_upload
from tests.serve._serve_helpers import image_bytes, png_claiming

LIMITS = {"max_bytes": 1_000_000, "max_pixels": 1_000_000}


@pytest.mark.parametrize("fmt,mode", [("PNG", "RGB"), ("JPEG", "RGB"), ("PNG", "L"),
                                      ("PNG", "P"), ("PNG", "RGBA"), ("JPEG", "CMYK"),
                                      ("PNG", "I;16"), ("TIFF", "RGB"), ("WEBP", "RGB")])
def test_decode_is_the_file_decode_of_detbox_infer(tmp_path, fmt, mode):
    data = image_bytes(30, 40, fmt=fmt, mode=mode)
    path = tmp_path / f"x.{fmt.lower()}"
    path.write_bytes(data)
    pixels = decode_upload(data, path.name, **LIMITS)
    assert pixels.shape == (30, 40, 3) and pixels.dtype == np.uint8
    np.testing.assert_array_equal(pixels, upright_array(load_image(path)))


def test_a_16_bit_image_is_scaled_not_clipped():
    pixels = decode_upload(image_bytes(20, 20, mode="I;16"), "deep.png", **LIMITS)
    assert 20 < pixels.mean() < 235  # clipping at 255 would turn it almost all white


def test_exif_orientation_is_applied(tmp_path):
    from PIL import Image

    picture = Image.fromarray(np.zeros((20, 50, 3), dtype=np.uint8))
    exif = picture.getexif()
    exif[0x0112] = 6  # rotate 90 degrees to view
    path = tmp_path / "turned.jpg"
    picture.save(path, exif=exif)
    assert decode_upload(path.read_bytes(), "turned.jpg", **LIMITS).shape == (50, 20, 3)


@pytest.mark.parametrize("data,status,code", [
    (b"", 400, "empty"),
    (b"%PDF-1.4 not a picture", 415, "not_an_image"),
    (image_bytes(64, 64, fmt="PNG")[:200], 400, "truncated"),
    (image_bytes(64, 64, fmt="JPEG")[:300], 400, "truncated"),
    (b"x" * 1_000_001, 413, "too_many_bytes"),
    (png_claiming(50_000, 50_000), 413, "too_many_pixels"),
    (image_bytes(8, 8, fmt="TIFF", mode="LAB"), 415, "unsupported_mode"),
])
def test_bad_uploads_name_their_problem(data, status, code):
    with pytest.raises(UploadError) as info:
        decode_upload(data, "upload.bin", **LIMITS)
    assert (info.value.status, info.value.code) == (status, code)
    assert str(info.value).startswith("upload.bin: ")


def test_pixels_are_counted_from_the_header_before_decoding(monkeypatch):
    from PIL import ImageFile

    def no_decode(self):
        raise AssertionError("decoded an image that the header already refuses")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decode)
    with pytest.raises(UploadError, match="2000x1000 pixels is more than the 1000000"):
        decode_upload(png_claiming(2000, 1000), "bomb.png", **LIMITS)
