"""Awkward images load as RGB; broken ones raise ImageReadError with a classified reason; the
inference API's ``on_error`` contract."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from detbox.apis.inference import (
    ImageReadError,
    inference_detector,
    inference_with_images,
    iter_predictions,
)
from detbox.data.inference import load_image
from detbox.data.transforms.loading import image_read_error
from detbox.errors import ConfigError, DatasetError
from detbox.structures import Instances
from tests.robustness.image_zoo import AWKWARD, BROKEN, write_awkward, write_broken, write_zoo
from tests.tiny_detector import build_tiny, tiny_config


@pytest.fixture(scope="module")
def zoo(tmp_path_factory) -> Path:
    return write_zoo(tmp_path_factory.mktemp("zoo"))


@pytest.fixture(scope="module")
def model():
    return build_tiny(tiny_config())


@pytest.mark.parametrize("name", sorted(AWKWARD))
def test_awkward_but_valid_images_load_as_upright_rgb(zoo: Path, name: str) -> None:
    record = load_image(zoo / name)
    image = record["img"]
    assert image.dtype.is_floating_point is False and image.shape == (3, *AWKWARD[name])
    assert record["ori_shape"] == AWKWARD[name]
    assert image.float().std() > 0  # real pixels, not a blank decode


def test_sixteen_bit_pixels_are_scaled_not_clipped(zoo: Path) -> None:
    grey = load_image(zoo / "gray.png")["img"].int()
    deep = load_image(zoo / "sixteen_bit.png")["img"].int()
    assert (grey - deep).abs().max() <= 1  # v * 257 scaled back to v


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_a_broken_file_raises_image_read_error_with_its_reason(zoo: Path, name: str) -> None:
    with pytest.raises(ImageReadError) as info:
        load_image(zoo / name)
    error = info.value
    assert isinstance(error, DatasetError)
    assert (error.path, error.reason) == (str(zoo / name), BROKEN[name])
    message = str(error)
    assert message.startswith(f"{zoo / name}: cannot read image ({BROKEN[name]}")
    assert "\n" not in message and "annotation file" not in message


def test_the_bomb_guard_follows_pillows_limit(tmp_path: Path, monkeypatch) -> None:
    Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(tmp_path / "a.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # 1600 px > 2 * 100: refused
    with pytest.raises(ImageReadError) as info:
        load_image(tmp_path / "a.png")
    assert info.value.reason == "too large"


def test_missing_and_other_reasons(tmp_path: Path) -> None:
    with pytest.raises(ImageReadError) as info:
        load_image(tmp_path / "gone.jpg")
    assert info.value.reason == "missing" and "annotation file" not in str(info.value)
    mode = image_read_error("x.tif", ValueError("conversion from I;16S to RGB not supported "
                                                "(mode)"))
    assert mode.reason == "unsupported mode"
    denied = image_read_error("x.jpg", PermissionError(13, "Permission denied"))
    assert denied.reason == "permission denied"
    in_dataset = image_read_error("x.jpg", OSError("image file is truncated"), in_dataset=True)
    assert in_dataset.reason == "truncated" and "annotation file" in str(in_dataset)


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0,
                    reason="root reads files whatever their permissions")
def test_an_unreadable_permission_is_reported(tmp_path: Path) -> None:
    write_awkward(tmp_path)
    locked = tmp_path / "gray.png"
    locked.chmod(0)
    try:
        with pytest.raises(ImageReadError) as info:
            load_image(locked)
    finally:
        locked.chmod(0o644)
    assert info.value.reason == "permission denied"


def test_inference_raises_by_default_naming_the_file(zoo: Path, model) -> None:
    with pytest.raises(ImageReadError, match="truncated.jpg: cannot read image") as info:
        inference_detector(model, zoo / "truncated.jpg")
    assert info.value.reason == "truncated"
    with pytest.raises(ImageReadError, match="empty.jpg"):
        inference_detector(model, [zoo / "gray.png", zoo / "empty.jpg"])


def test_on_error_skip_keeps_the_list_aligned(zoo: Path, model) -> None:
    paths = [zoo / "gray.png", zoo / "empty.jpg", zoo / "rgba.png", zoo / "text.jpg",
             zoo / "exif_rotated.jpg"]
    results = inference_detector(model, paths, batch_size=2, on_error="skip")
    assert [type(r) for r in results] == [Instances, type(None), Instances, type(None),
                                          Instances]
    alone = inference_detector(model, [paths[0]])
    assert results[0].boxes.shape == alone[0].boxes.shape  # the batch mate's absence is harmless
    assert inference_detector(model, paths[1], on_error="skip") is None
    kept = inference_with_images(model, paths, on_error="skip")
    assert kept[1] is None and kept[4].ori_shape == (32, 24)


def test_iter_predictions_streams_errors_in_place(zoo: Path, model) -> None:
    paths = [zoo / "huge.png", zoo / "palette.png", zoo / "truncated.png"]
    results = list(iter_predictions(model, paths, batch_size=3))
    assert [getattr(r, "reason", "ok") for r in results] == ["too large", "ok", "truncated"]
    assert results[1].image is None and len(results[1].instances.scores) > 0


def test_on_error_must_be_raise_or_skip(zoo: Path, model) -> None:
    with pytest.raises(ConfigError, match="on_error"):
        inference_detector(model, [zoo / "gray.png"], on_error="ignore")


def test_only_broken_files_give_all_nones(tmp_path: Path, model) -> None:
    write_broken(tmp_path)
    paths = sorted(tmp_path.iterdir())
    assert inference_detector(model, paths, on_error="skip") == [None] * len(BROKEN)
