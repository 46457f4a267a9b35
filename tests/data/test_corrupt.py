"""The Corrupt transform: the benchmark's corruptions over ``imagecorruptions``, seeded per
image, and its errors."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from detbox.data.transforms import Compose, Corrupt
from detbox.data.transforms.corrupt import (
    BENCHMARK_CORRUPTIONS,
    CORRUPTION_GROUPS,
    CORRUPTIONS,
    EXTRA_CORRUPTIONS,
    corruption_names,
    load_imagecorruptions,
)
from detbox.errors import ConfigError, DatasetError
from detbox.registry import TRANSFORMS

try:
    load_imagecorruptions()
    HAVE_PACKAGE = True
except ConfigError:
    HAVE_PACKAGE = False
needs_package = pytest.mark.skipif(not HAVE_PACKAGE, reason="imagecorruptions is not installed "
                                   "(pip install 'detbox[robustness]')")


def _results(height: int = 40, width: int = 48, image_id: int = 7, seed: int = 0) -> dict:
    """What LoadImage gives: a (3, H, W) uint8 image at its original size."""
    pixels = np.random.default_rng(seed).integers(30, 220, (3, height, width), dtype=np.uint8)
    return {"img": torch.from_numpy(pixels), "image_id": image_id, "img_path": f"{image_id}.png",
            "ori_shape": (height, width), "img_shape": (height, width)}


@needs_package
def test_names_and_groups_are_the_packages():
    package = load_imagecorruptions()
    assert list(CORRUPTIONS) == package.get_corruption_names("all")
    assert list(BENCHMARK_CORRUPTIONS) == package.get_corruption_names("common")
    assert list(EXTRA_CORRUPTIONS) == package.get_corruption_names("validation")
    for group, names in CORRUPTION_GROUPS.items():
        assert list(names) == package.get_corruption_names(group)


def test_selections_expand_to_names():
    assert corruption_names("noise") == ["gaussian_noise", "shot_noise", "impulse_noise"]
    assert corruption_names("blur") == ["defocus_blur", "glass_blur", "motion_blur",
                                        "zoom_blur"]
    assert corruption_names("weather") == ["snow", "frost", "fog", "brightness"]
    assert corruption_names("digital") == ["contrast", "elastic_transform", "pixelate",
                                           "jpeg_compression"]
    assert len(corruption_names("benchmark")) == 15 and len(corruption_names("all")) == 19
    assert corruption_names(["fog", "noise", "fog"]) == ["fog", "gaussian_noise", "shot_noise",
                                                         "impulse_noise"]
    with pytest.raises(ConfigError, match="unknown corruption 'gaussian'.*weather.*saturate"):
        corruption_names(["noise", "gaussian"])


@needs_package
def test_output_is_seeded_per_image_and_differs_from_the_input():
    state = np.random.get_state()
    transform = Corrupt(corruption="gaussian_noise", severity=3)
    first = transform(_results())["img"]
    second = transform(_results())["img"]
    other_image = transform(_results(image_id=8))["img"]
    assert np.array_equal(np.random.get_state()[1], state[1])  # global state restored
    assert first.dtype == torch.uint8 and first.shape == (3, 40, 48)
    assert torch.equal(first, second)
    assert not torch.equal(first, other_image)
    clean = _results()["img"]
    assert (first.int() - clean.int()).abs().float().mean() > 5
    milder = Corrupt(corruption="gaussian_noise", severity=1)(_results())["img"]
    assert (milder.int() - clean.int()).abs().float().mean() < (
        first.int() - clean.int()).abs().float().mean()


@needs_package
@pytest.mark.parametrize("corruption", [c for c in CORRUPTIONS if c != "glass_blur"])
def test_every_corruption_changes_the_image_and_keeps_its_shape(corruption):
    clean = _results(seed=1)["img"]
    out = Corrupt(corruption=corruption, severity=5)(_results(seed=1))["img"]
    assert out.dtype == torch.uint8 and out.shape == clean.shape
    assert not torch.equal(out, clean)


def test_severity_zero_is_a_no_op():
    results = _results()
    before = results["img"].clone()
    assert torch.equal(Corrupt(corruption="fog", severity=0)(results)["img"], before)


def test_config_mistakes_are_clear_errors():
    with pytest.raises(ConfigError, match="unknown corruption 'gausian_noise'.*gaussian_noise"):
        Corrupt(corruption="gausian_noise")
    with pytest.raises(ConfigError, match="severity"):
        TRANSFORMS.build({"type": "Corrupt", "corruption": "fog", "severity": 6})
    with pytest.raises(ConfigError, match="corruption"):
        TRANSFORMS.build({"type": "Corrupt", "severity": 2})


def test_missing_package_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "imagecorruptions", None)
    with pytest.raises(ConfigError, match=r"pip install 'detbox\[robustness\]'"):
        Corrupt(corruption="fog", severity=2)
    Corrupt(corruption="fog", severity=0)  # the clean baseline needs no package


@needs_package
def test_must_come_right_after_load_image():
    pipeline = Compose([{"type": "Resize", "scale": (64, 64), "keep_ratio": True},
                        {"type": "Corrupt", "corruption": "fog", "severity": 1}])
    with pytest.raises(ConfigError, match="right after LoadImage"):
        pipeline(_results())


@needs_package
def test_too_small_image_is_a_clear_error():
    with pytest.raises(DatasetError, match="7.png: 40x20 pixels.*at least 32x32"):
        Corrupt(corruption="fog", severity=1)(_results(height=20, width=40))
