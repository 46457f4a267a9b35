"""Transforms keep image, boxes, masks and ignored boxes consistent; Resize matches torchvision."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.models.detection.transform import GeneralizedRCNNTransform

from detbox.data.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    Compose,
    LoadImage,
    Normalize,
    PackDetInputs,
    Pad,
    RandomFlip,
    Resize,
)
from detbox.errors import ConfigError, DatasetError


def _results(height: int = 48, width: int = 64, seed: int = 0) -> dict:
    """A loaded image with two boxes, their exact rectangular masks and one ignored box."""
    gen = torch.Generator().manual_seed(seed)
    boxes = torch.tensor([[4.0, 6.0, 30.0, 20.0], [33.0, 10.0, 60.0, 44.0]])
    masks = torch.zeros((2, height, width), dtype=torch.uint8)
    for mask, (x0, y0, x1, y1) in zip(masks, boxes.int().tolist()):
        mask[y0:y1, x0:x1] = 1
    return {
        "img": torch.randint(0, 256, (3, height, width), dtype=torch.uint8, generator=gen),
        "image_id": 1, "file_name": "x.png", "img_path": "x.png",
        "ori_shape": (height, width), "img_shape": (height, width),
        "scale_factor": (1.0, 1.0), "flip": None,
        "gt_boxes": boxes, "gt_labels": torch.tensor([0, 2]), "gt_masks": masks,
        "ignored_boxes": torch.tensor([[0.0, 0.0, 10.0, 5.0]]),
    }


def _mask_boxes(masks: torch.Tensor) -> torch.Tensor:
    boxes = []
    for mask in masks:
        ys, xs = torch.nonzero(mask, as_tuple=True)
        boxes.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
    return torch.tensor(boxes, dtype=torch.float32)


def test_flip_twice_is_identity() -> None:
    original = _results()
    flip = RandomFlip(prob=1.0)
    once = flip(_results())
    assert once["flip"] == "horizontal"
    assert torch.equal(once["gt_boxes"], _mask_boxes(once["gt_masks"]))
    assert once["ignored_boxes"].tolist() == [[54.0, 0.0, 64.0, 5.0]]
    twice = flip(once)
    assert twice["flip"] is None
    for key in ("img", "gt_boxes", "gt_masks", "ignored_boxes"):
        assert torch.equal(twice[key], original[key]), key


def test_flip_probability_follows_python_random() -> None:
    flip = RandomFlip(prob=0.5)
    random.seed(0)
    first = [flip(_results())["flip"] for _ in range(20)]
    random.seed(0)
    assert [flip(_results())["flip"] for _ in range(20)] == first
    assert set(first) == {None, "horizontal"}
    assert RandomFlip(prob=0.0)(_results())["flip"] is None


def test_resize_scales_boxes_by_the_recorded_factor() -> None:
    original = _results()
    out = Resize(scale=(100, 70))(_results())
    # scale = min(70 / 48, 100 / 64) = 1.458..; new size floor(48 * s), floor(64 * s)
    assert out["img_shape"] == (70, 93) and out["img"].shape == (3, 70, 93)
    sx, sy = out["scale_factor"]
    assert (sx, sy) == (93 / 64, 70 / 48)
    expected = original["gt_boxes"] * torch.tensor([sx, sy, sx, sy])
    assert torch.allclose(out["gt_boxes"], expected)
    assert torch.allclose(out["ignored_boxes"], original["ignored_boxes"] * torch.tensor(
        [sx, sy, sx, sy]))
    assert out["gt_masks"].shape == (2, 70, 93) and out["gt_masks"].dtype == torch.uint8
    assert (_mask_boxes(out["gt_masks"]) - out["gt_boxes"]).abs().max() <= 1.0
    assert out["img"].dtype == torch.float32


@pytest.mark.parametrize(("height", "width", "min_size", "max_size"),
                         [(333, 500, 800, 1333), (517, 213, 600, 1000), (97, 150, 64, 80)])
def test_resize_matches_torchvision(height: int, width: int, min_size: int, max_size: int) -> None:
    results = _results(height, width, seed=height)
    results["gt_masks"] = torch.randint(0, 2, (2, height, width), dtype=torch.uint8)
    image = results["img"].float()
    target = {"boxes": results["gt_boxes"].clone(), "masks": results["gt_masks"].clone()}
    reference = GeneralizedRCNNTransform(min_size, max_size, [m / 255 for m in IMAGENET_MEAN],
                                         [s / 255 for s in IMAGENET_STD]).eval()
    tv_image, tv_target = reference.resize(image.clone(), target)

    out = Resize(scale=(max_size, min_size))(results)
    assert torch.equal(out["img"], tv_image)  # same sizes and the very same pixels
    assert torch.equal(out["gt_masks"], tv_target["masks"])
    assert torch.allclose(out["gt_boxes"], tv_target["boxes"])

    # Whole preprocessing: torchvision normalizes 0-1 images before resizing, we resize first.
    tv_normalized = reference.resize(reference.normalize(image / 255))[0]
    ours = Normalize(IMAGENET_MEAN, IMAGENET_STD)(out)["img"]
    assert torch.allclose(ours, tv_normalized, atol=1e-4)


def test_multi_scale_and_scale_range() -> None:
    random.seed(0)
    multi = Resize(scale=[(200, 60), (200, 80)])
    shorts = {multi(_results())["img_shape"][0] for _ in range(20)}
    assert shorts == {60, 80}
    ranged = Resize(scale=(1000, 100), scale_range=(50, 70))
    shorts = {ranged(_results())["img_shape"][0] for _ in range(30)}
    assert min(shorts) >= 50 and max(shorts) <= 70 and len(shorts) > 5
    assert Resize(scale=[[200, 60]])(_results())["img_shape"][0] == 60  # YAML-style lists


def test_resize_without_keeping_ratio() -> None:
    out = Resize(scale=(32, 40), keep_ratio=False)(_results())
    assert out["img_shape"] == (40, 32) and out["scale_factor"] == (0.5, 40 / 48)


def test_degenerate_boxes_are_dropped_with_their_masks() -> None:
    results = _results()
    results["gt_boxes"][1] = torch.tensor([70.0, 10.0, 80.0, 40.0])  # entirely right of image
    out = Resize(scale=(64, 48))(results)
    assert out["gt_boxes"].shape == (1, 4) and out["gt_labels"].tolist() == [0]
    assert out["gt_masks"].shape[0] == 1


def test_pad_and_normalize() -> None:
    out = Pad(size_divisor=32)(Normalize()(Resize(scale=(100, 70))(_results())))
    assert out["img"].shape == (3, 96, 96) and out["pad_shape"] == (96, 96)
    assert out["img_shape"] == (70, 93)
    assert out["gt_masks"].shape == (2, 96, 96)
    assert out["img"][:, 70:].abs().sum() == 0 and out["img"][:, :, 93:].abs().sum() == 0
    with pytest.raises(ConfigError, match="before Pad"):
        RandomFlip(prob=1.0)(out)


def test_normalize_values() -> None:
    results = {"img": torch.full((3, 2, 2), 255, dtype=torch.uint8)}
    out = Normalize(mean=(0, 0, 255), std=(255, 1, 1))(results)["img"]
    assert out[:, 0, 0].tolist() == [1.0, 255.0, 0.0]


def test_pack_det_inputs() -> None:
    image, sample = PackDetInputs()(Resize(scale=(100, 70))(_results()))
    assert image.shape == (3, 70, 93) and image.dtype == torch.float32
    assert sample.gt.boxes.dtype == torch.float32 and sample.gt.labels.dtype == torch.int64
    assert sample.gt.masks.shape == (2, 70, 93) and sample.ori_shape == (48, 64)
    assert sample.scale_factor == (93 / 64, 70 / 48) and sample.extra["img_path"] == "x.png"
    no_gt = _results()
    for key in ("gt_boxes", "gt_labels", "gt_masks", "ignored_boxes"):
        del no_gt[key]
    _, sample = PackDetInputs()(no_gt)
    assert sample.gt is None and sample.ignored_boxes.shape == (0, 4)


def test_load_image_applies_exif_orientation_and_converts_to_rgb(tmp_path: Path) -> None:
    pixels = np.zeros((10, 20), dtype=np.uint8)
    pixels[:, :5] = 255
    exif = Image.Exif()
    exif[0x0112] = 6  # stored image must be rotated 90 degrees clockwise to display
    Image.fromarray(pixels, mode="L").save(tmp_path / "rotated.jpg", exif=exif, quality=100)
    out = LoadImage()({"img_path": str(tmp_path / "rotated.jpg")})
    assert out["img"].shape == (3, 20, 10) and out["img"].dtype == torch.uint8
    assert out["ori_shape"] == (20, 10)
    assert out["img"][:, :5].float().mean() > 200 and out["img"][:, -5:].float().mean() < 50


def test_load_image_missing_file() -> None:
    with pytest.raises(DatasetError, match="nowhere.png: image file not found"):
        LoadImage()({"img_path": "nowhere.png"})


def test_compose_builds_from_configs() -> None:
    pipeline = Compose([{"type": "Resize", "scale": (100, 70)}, RandomFlip(prob=0.0),
                        {"type": "PackDetInputs"}])
    image, _ = pipeline(_results())
    assert image.shape == (3, 70, 93) and len(pipeline) == 3
    with pytest.raises(ConfigError, match="'prob'"):
        Compose([{"type": "RandomFlip", "probability": 0.5}])
    with pytest.raises(ConfigError, match="RandomFlip"):
        Compose([{"type": "RandomFlp"}])
    with pytest.raises(ConfigError, match="list of transforms"):
        Compose({"type": "Resize"})
