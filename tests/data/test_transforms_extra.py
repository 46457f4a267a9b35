"""Augmentations keep image, boxes, masks and ignored boxes in agreement.

The property tests paint every object (and the ignored region) as a filled rectangle of its own
colour: after a transform the pixels of that colour must fill exactly the object's box, and the
object's mask must be exactly those pixels.
"""

from __future__ import annotations

import random

import pytest
import torch
from torchvision.ops import box_iou

from detbox.data.transforms import (
    Compose,
    Expand,
    MinIoURandomCrop,
    Normalize,
    PhotoMetricDistortion,
    RandomCrop,
    RandomFlip,
    RandomResize,
    RandomRotate90,
    crop_results,
)
from detbox.errors import ConfigError
from detbox.models.detectors import rescale_to_original
from detbox.structures import DetSample, Instances, compose_flips

# label -> colour; the ignored region is painted in IGNORED_COLOUR.
COLOURS = {0: (230, 40, 40), 1: (40, 200, 60), 2: (50, 60, 220)}
IGNORED_COLOUR = (250, 250, 20)


def _scene(height: int = 60, width: int = 80) -> dict:
    """A dark image with three coloured rectangles (objects) and one ignored rectangle."""
    boxes = [(4, 6, 30, 25), (36, 30, 70, 56), (60, 4, 76, 20)]
    ignored = (8, 40, 24, 54)
    image = torch.full((3, height, width), 10, dtype=torch.uint8)
    masks = torch.zeros((len(boxes), height, width), dtype=torch.uint8)
    for label, (x1, y1, x2, y2) in enumerate(boxes):
        image[:, y1:y2, x1:x2] = torch.tensor(COLOURS[label]).view(3, 1, 1)
        masks[label, y1:y2, x1:x2] = 1
    x1, y1, x2, y2 = ignored
    image[:, y1:y2, x1:x2] = torch.tensor(IGNORED_COLOUR).view(3, 1, 1)
    return {
        "img": image, "image_id": 1, "file_name": "scene.png", "img_path": "scene.png",
        "ori_shape": (height, width), "img_shape": (height, width),
        "scale_factor": (1.0, 1.0), "flip": None,
        "gt_boxes": torch.tensor(boxes, dtype=torch.float32),
        "gt_labels": torch.arange(len(boxes)), "gt_masks": masks,
        "ignored_boxes": torch.tensor([ignored], dtype=torch.float32),
    }


def _region(image: torch.Tensor, colour: torch.Tensor) -> torch.Tensor:
    """(H, W) bool: pixels within 1 of ``colour`` in every channel."""
    return (image.float() - colour.float().view(3, 1, 1)).abs().amax(dim=0) < 1.0


def _bounds(region: torch.Tensor) -> list[float]:
    ys, xs = torch.nonzero(region, as_tuple=True)
    return [float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)]


def _check_consistent(out: dict, exact_colours: bool = True) -> None:
    """Every kept object's colour fills exactly its box, and its mask is exactly that region.

    With ``exact_colours`` the colour must be the one painted for the object's label (labels
    travel with their boxes); colour augmentations are checked with the colour at the centre.
    """
    image = out["img"]
    assert tuple(image.shape[-2:]) == tuple(out["img_shape"])
    assert out["gt_masks"].shape == (len(out["gt_boxes"]), *image.shape[-2:])

    def colour(box: torch.Tensor, painted: tuple[int, int, int]) -> torch.Tensor:
        if exact_colours:
            return torch.tensor(painted)
        cx, cy = int((box[0] + box[2]) / 2), int((box[1] + box[3]) / 2)
        return image[:, cy, cx]

    for box, label, mask in zip(out["gt_boxes"], out["gt_labels"], out["gt_masks"]):
        region = _region(image, colour(box, COLOURS[int(label)]))
        assert _bounds(region) == box.tolist()
        assert torch.equal(mask.bool(), region)
    for box in out["ignored_boxes"]:
        assert _bounds(_region(image, colour(box, IGNORED_COLOUR))) == box.tolist()


GEOMETRIC = {
    "flip_horizontal": lambda: RandomFlip(prob=1.0, direction="horizontal"),
    "flip_vertical": lambda: RandomFlip(prob=1.0, direction="vertical"),
    "flip_any": lambda: RandomFlip(prob=1.0, direction=["horizontal", "vertical", "diagonal"]),
    "crop_center": lambda: RandomCrop((40, 50), box_filter="center"),
    "crop_clip": lambda: RandomCrop((0.5, 0.5), crop_type="relative_range", box_filter="clip"),
    "crop_range": lambda: RandomCrop((20, 70), crop_type="absolute_range", allow_empty=True),
    "min_iou_crop": lambda: MinIoURandomCrop(min_ious=(0.1, 0.3), min_crop_size=0.3),
    "expand": lambda: Expand(ratio_range=(1.0, 3.0), prob=1.0),
    "rotate90": lambda: RandomRotate90(prob=1.0),
    "photometric": lambda: PhotoMetricDistortion(prob=1.0),
}


@pytest.mark.parametrize("name", sorted(GEOMETRIC))
def test_painted_rectangles_stay_inside_their_boxes(name: str) -> None:
    transform = GEOMETRIC[name]()
    random.seed(0)
    for _ in range(12):
        _check_consistent(transform(_scene()), exact_colours=name != "photometric")


def test_chained_augmentations_stay_consistent() -> None:
    pipeline = Compose([
        PhotoMetricDistortion(prob=1.0), Expand(ratio_range=(1.0, 2.0), prob=0.5),
        MinIoURandomCrop(), RandomRotate90(prob=0.5), RandomFlip(prob=0.5, direction="vertical"),
    ])
    random.seed(1)
    for _ in range(12):
        _check_consistent(pipeline(_scene()), exact_colours=False)


def test_crop_center_rule_drops_objects_whose_centre_leaves() -> None:
    results = _scene()
    # Window x in [0, 20): object 0 (x 4..30, centre 17) stays, clipped to x2 = 20;
    # the others (centres 53 and 68) leave; the ignored box is clipped.
    out = crop_results(results, (0, 0, 20, 60), box_filter="center")
    assert out["gt_boxes"].tolist() == [[4.0, 6.0, 20.0, 25.0]]
    assert out["gt_labels"].tolist() == [0] and out["gt_masks"].shape == (1, 60, 20)
    assert out["ignored_boxes"].tolist() == [[8.0, 40.0, 20.0, 54.0]]
    clipped = crop_results(_scene(), (0, 0, 40, 60), box_filter="clip")
    assert clipped["gt_labels"].tolist() == [0, 1]  # object 1 has x 36..40 inside
    assert clipped["gt_boxes"][1].tolist() == [36.0, 30.0, 40.0, 56.0]


def test_random_crop_keeps_an_object_unless_empty_crops_are_allowed() -> None:
    random.seed(0)
    crop = RandomCrop((10, 10))
    for _ in range(20):
        out = crop(_scene())
        assert len(out["gt_boxes"]) > 0
        assert out["img_shape"] in ((10, 10), (60, 80))  # cropped, or left whole after tries


def test_min_iou_crop_respects_the_threshold(monkeypatch: pytest.MonkeyPatch) -> None:
    from detbox.data.transforms import crop as crop_module

    windows = []
    original_crop = crop_module.crop_results

    def recording_crop(results, window, box_filter="center"):
        windows.append(window)
        return original_crop(results, window, box_filter)

    monkeypatch.setattr(crop_module, "crop_results", recording_crop)
    def one_object() -> dict:  # IoU >= 0.3 with all three spread-out boxes is impossible
        scene = _scene()
        for key in ("gt_boxes", "gt_labels", "gt_masks"):
            scene[key] = scene[key][1:2]
        return scene

    random.seed(3)
    crop = MinIoURandomCrop(min_ious=(0.3,), min_crop_size=0.3)
    boxes = one_object()["gt_boxes"]
    for _ in range(20):
        out = crop(one_object())
        if out["img_shape"] == (60, 80):  # the "keep the whole image" mode
            continue
        left, top, right, bottom = windows[-1]
        assert (bottom - top, right - left) == out["img_shape"]
        assert 0.5 <= (bottom - top) / (right - left) <= 2.0
        window = torch.tensor([windows[-1]], dtype=torch.float32)
        assert box_iou(window, boxes).min() >= 0.3
        assert len(out["gt_boxes"]) > 0
    assert len(windows) > 5


def test_expand_fills_with_the_mean_and_keeps_the_dtype() -> None:
    random.seed(0)
    scene = _scene()
    out = Expand(mean=(100, 110, 120), ratio_range=(2.0, 2.0), prob=1.0)(_scene())
    assert out["img"].dtype == torch.uint8 and out["img_shape"] == (120, 160)
    left, top = (out["gt_boxes"][0, :2] - scene["gt_boxes"][0, :2]).int().tolist()
    placed = torch.zeros((120, 160), dtype=torch.bool)
    placed[top:top + 60, left:left + 80] = True
    assert torch.equal(out["img"][:, top:top + 60, left:left + 80], scene["img"])
    fill = out["img"].permute(1, 2, 0)[~placed]
    assert (fill == torch.tensor([100, 110, 120], dtype=torch.uint8)).all()
    floating = _scene()
    floating["img"] = floating["img"].float()
    assert Expand(prob=1.0)(floating)["img"].dtype == torch.float32


def test_rotate90_four_times_is_identity_and_180_is_a_diagonal_flip() -> None:
    random.seed(0)
    rotate = RandomRotate90(prob=1.0, angles=(90,))
    out = _scene()
    for _ in range(4):
        out = rotate(out)
    original = _scene()
    for key in ("img", "gt_boxes", "gt_masks", "ignored_boxes"):
        assert torch.equal(out[key], original[key]), key
    rotated = RandomRotate90(prob=1.0, angles=(180,))(_scene())
    flipped = RandomFlip(prob=1.0, direction="diagonal")(_scene())
    for key in ("img", "gt_boxes", "gt_masks", "ignored_boxes"):
        assert torch.equal(rotated[key], flipped[key]), key


def test_photometric_distortion_changes_colours_only() -> None:
    random.seed(0)
    scene = _scene()
    out = PhotoMetricDistortion(prob=1.0)(_scene())
    assert out["img"].dtype == torch.float32 and out["img"].shape == scene["img"].shape
    assert not torch.allclose(out["img"], scene["img"].float())
    assert out["img"].min() >= 0 and out["img"].max() <= 255
    assert torch.equal(out["gt_boxes"], scene["gt_boxes"])
    unchanged = PhotoMetricDistortion(prob=0.0)(_scene())
    assert torch.allclose(unchanged["img"], scene["img"].float(), atol=1e-3)
    random.seed(5)
    first = PhotoMetricDistortion(prob=0.5)(_scene())["img"]
    random.seed(5)
    assert torch.equal(PhotoMetricDistortion(prob=0.5)(_scene())["img"], first)


def test_pixel_augmentations_refuse_normalized_images_and_test_samples() -> None:
    normalized = Normalize()(_scene())
    for transform in (PhotoMetricDistortion(), Expand(prob=1.0)):
        with pytest.raises(ConfigError, match="before Normalize"):
            transform(normalized)
    no_gt = _scene()
    del no_gt["gt_boxes"]
    for transform in (RandomCrop((10, 10)), MinIoURandomCrop(), Expand(), RandomRotate90()):
        with pytest.raises(ConfigError, match="training augmentation"):
            transform(no_gt)


def test_invalid_arguments_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="direction"):
        RandomFlip(direction="sideways")
    with pytest.raises(ConfigError, match="crop_type"):
        RandomCrop((10, 10), crop_type="percent")
    with pytest.raises(ConfigError, match="fractions"):
        RandomCrop((10, 10), crop_type="relative")
    with pytest.raises(ConfigError, match="multiples of 90"):
        RandomRotate90(angles=(45,))
    with pytest.raises(ConfigError, match="ratio_range"):
        Expand(ratio_range=(0.5, 2))
    with pytest.raises(ConfigError, match="ratio_range"):
        RandomResize(ratio_range=(2.0, 1.0))
    with pytest.raises(ConfigError, match="RandomCrop"):
        Compose([{"type": "RandomCrop", "crop_size": (8, 8), "box_filer": "clip"}])


def test_random_resize_draws_the_ratio_per_image() -> None:
    random.seed(0)
    resize = RandomResize(scale=(200, 100), ratio_range=(0.5, 1.0))
    shorts = {resize(_scene())["img_shape"][0] for _ in range(20)}
    assert len(shorts) > 5 and min(shorts) >= 50 and max(shorts) <= 100  # 100 x [0.5, 1]
    out = RandomResize(scale=(40, 30), ratio_range=(2.0, 2.0), keep_ratio=False)(_scene())
    assert out["img_shape"] == (60, 80) and out["scale_factor"] == (1.0, 1.0)


def test_compose_flips() -> None:
    assert compose_flips(None, "horizontal") == "horizontal"
    assert compose_flips("horizontal", "vertical") == "diagonal"
    assert compose_flips("diagonal", "vertical") == "horizontal"
    assert compose_flips("vertical", "vertical") is None


@pytest.mark.parametrize("direction", ["horizontal", "vertical", "diagonal"])
def test_rescale_to_original_undoes_every_flip_direction(direction: str) -> None:
    scene = _scene()
    out = RandomFlip(prob=1.0, direction=direction)(_scene())
    assert out["flip"] == direction
    sample = DetSample(image_id=1, file_name="scene.png", ori_shape=(60, 80),
                       img_shape=out["img_shape"], flip=out["flip"])
    flipped = Instances(boxes=out["gt_boxes"], labels=out["gt_labels"])
    restored = rescale_to_original(flipped, sample)
    assert torch.equal(restored.boxes, scene["gt_boxes"])
