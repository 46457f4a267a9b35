"""The ``Albu`` transform keeps boxes, labels and masks on their objects' pixels."""

from __future__ import annotations

import random
import sys

import numpy as np
import pytest
import torch

from detbox.data.transforms import Albu
from detbox.errors import ConfigError
from tests.data.test_transforms_extra import _check_consistent, _scene

pytest.importorskip("albumentations", reason="albumentations (detbox[albu]) is not installed")


def _seeded(seed: int = 0) -> None:
    random.seed(seed)
    np.random.seed(seed)


@pytest.mark.parametrize("transforms", [
    [dict(type="HorizontalFlip", p=1.0)],
    [dict(type="VerticalFlip", p=1.0), dict(type="Transpose", p=1.0)],
    [dict(type="Affine", translate_px={"x": 7, "y": -5}, p=1.0)],
    [dict(type="Crop", x_min=10, y_min=8, x_max=70, y_max=50)],
    [dict(type="OneOf", transforms=[dict(type="HorizontalFlip", p=1.0),
                                    dict(type="VerticalFlip", p=1.0)], p=1.0)],
], ids=["hflip", "vflip_transpose", "affine_shift", "crop", "one_of"])
def test_boxes_and_masks_stay_on_their_rectangles(transforms: list) -> None:
    _seeded()
    out = Albu(transforms=transforms)(_scene())
    assert len(out["gt_boxes"]) >= 1
    _check_consistent(out)


def test_horizontal_flip_moves_every_box_as_expected() -> None:
    scene = _scene()
    out = Albu(transforms=[dict(type="HorizontalFlip", p=1.0)])(_scene())
    width = scene["img_shape"][1]
    expected = scene["gt_boxes"][:, [2, 1, 0, 3]] * torch.tensor([-1, 1, -1, 1]) \
        + torch.tensor([width, 0, width, 0])
    assert torch.equal(out["gt_boxes"], expected)
    assert torch.equal(out["gt_labels"], scene["gt_labels"])
    assert out["img"].dtype == torch.uint8


def test_dropped_boxes_drop_their_labels_and_masks() -> None:
    # The window keeps objects 0 (4..30 x 6..25) and 1 in part, object 2 (60..76 x 4..20) not.
    out = Albu(transforms=[dict(type="Crop", x_min=0, y_min=0, x_max=50, y_max=60)])(_scene())
    assert out["gt_labels"].tolist() == [0, 1]
    assert out["gt_masks"].shape == (2, 60, 50)
    assert out["gt_boxes"].tolist() == [[4, 6, 30, 25], [36, 30, 50, 56]]
    _check_consistent(out)


def test_min_visibility_drops_mostly_cut_boxes() -> None:
    crop = [dict(type="Crop", x_min=0, y_min=0, x_max=40, y_max=60)]  # object 1: 4/34 visible
    assert Albu(transforms=crop)(_scene())["gt_labels"].tolist() == [0, 1]
    out = Albu(transforms=crop, min_visibility=0.3)(_scene())
    assert out["gt_labels"].tolist() == [0]
    _check_consistent(out)


def test_skip_img_without_anno_keeps_the_image_unaugmented() -> None:
    crop = [dict(type="Crop", x_min=0, y_min=35, x_max=30, y_max=60)]  # only the ignored box
    assert len(Albu(transforms=crop)(_scene())["gt_boxes"]) == 0
    scene = _scene()
    out = Albu(transforms=crop, skip_img_without_anno=True)(_scene())
    assert torch.equal(out["img"], scene["img"])
    assert torch.equal(out["gt_boxes"], scene["gt_boxes"])


def test_float_images_and_semantic_maps() -> None:
    scene = _scene()
    scene["img"] = scene["img"].float()
    scene["gt_seg"] = torch.arange(80, dtype=torch.uint8).repeat(60, 1)
    out = Albu(transforms=[dict(type="HorizontalFlip", p=1.0)])(scene)
    assert out["img"].dtype == torch.float32
    assert torch.equal(out["gt_seg"], torch.arange(80, dtype=torch.uint8).flip(0).repeat(60, 1))
    _check_consistent(out)


def test_photometric_transforms_leave_geometry_alone() -> None:
    _seeded()
    scene = _scene()
    out = Albu(transforms=[dict(type="RandomBrightnessContrast", p=1.0)])(_scene())
    assert torch.equal(out["gt_boxes"], scene["gt_boxes"])
    assert torch.equal(out["gt_masks"], scene["gt_masks"])
    assert not torch.equal(out["img"], scene["img"])


def test_empty_image_passes() -> None:
    scene = _scene()
    for key in ("gt_boxes", "ignored_boxes"):
        scene[key] = scene[key][:0]
    scene["gt_labels"], scene["gt_masks"] = scene["gt_labels"][:0], scene["gt_masks"][:0]
    out = Albu(transforms=[dict(type="HorizontalFlip", p=1.0)])(scene)
    assert out["gt_boxes"].shape == (0, 4) and out["gt_masks"].shape == (0, 60, 80)


def test_config_errors_are_clear() -> None:
    with pytest.raises(ConfigError, match="closest: 'HorizontalFlip'"):
        Albu(transforms=[dict(type="HorizontalFlp")])
    with pytest.raises(ConfigError, match="pascal_voc"):
        Albu(transforms=[], bbox_params=dict(format="coco"))
    with pytest.raises(ConfigError, match="albumentations.HorizontalFlip"):
        Albu(transforms=[dict(type="HorizontalFlip", prob=1.0)])
    with pytest.raises(ConfigError, match="after LoadAnnotations"):
        scene = _scene()
        del scene["gt_boxes"]
        Albu(transforms=[])(scene)


def test_missing_package_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "albumentations", None)
    with pytest.raises(ConfigError, match=r"detbox\[albu\]"):
        Albu(transforms=[dict(type="HorizontalFlip")])


def test_tiny_mask_rcnn_trains_on_albu_batches(tmp_path) -> None:
    import detbox.models  # noqa: F401  (registers the detectors)
    from detbox.data import build_dataloader
    from tests.models.two_stage._tiny import build, tiny_two_stage_cfg, train_steps

    _seeded()
    pipeline = [dict(type="LoadImage"), dict(type="LoadAnnotations", with_mask=True),
                dict(type="Albu", transforms=[dict(type="HorizontalFlip", p=0.5),
                                              dict(type="RandomBrightnessContrast", p=0.5)]),
                dict(type="Normalize", mean=[127, 127, 127], std=[64, 64, 64]),
                dict(type="PackDetInputs")]
    section = dict(batch_size=2, num_workers=0, dataset=dict(
        type="SyntheticShapesDataset", num_images=2, image_size=64, root=str(tmp_path),
        pipeline=pipeline))
    batch = next(iter(build_dataloader(section, seed=0, training=True)))
    for sample in batch.samples:
        assert sample.gt.masks.shape == (len(sample.gt), 64, 64)
    history = train_steps(build(tiny_two_stage_cfg("mask", num_classes=3)), batch, steps=2)
    assert all(torch.isfinite(torch.tensor(list(h.values()))).all() for h in history)
