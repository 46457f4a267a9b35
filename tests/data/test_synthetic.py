"""The synthetic shapes generator: determinism, exact masks, tight boxes, atomic caching."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from detbox.data import SyntheticShapesDataset, generate_synthetic_coco, synthetic
from detbox.data.transforms import decode_rles
from detbox.errors import ConfigError, DatasetError
from detbox.structures import DetSample


def _decode(segmentation: dict) -> np.ndarray:
    return decode_rles([segmentation], *segmentation["size"])[0]


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


def test_same_seed_gives_identical_files(tmp_path: Path) -> None:
    for name in ("a", "b"):
        generate_synthetic_coco(tmp_path / name, "train", num_images=6, image_size=64, seed=3,
                                max_size=32)
    first, second = _files(tmp_path / "a"), _files(tmp_path / "b")
    assert len(first) == 7
    assert first == second


def test_seed_and_split_change_the_data(tmp_path: Path) -> None:
    kwargs = {"num_images": 3, "image_size": 64, "max_size": 32}
    generate_synthetic_coco(tmp_path / "a", "train", seed=0, **kwargs)
    generate_synthetic_coco(tmp_path / "b", "train", seed=1, **kwargs)
    generate_synthetic_coco(tmp_path / "a", "val", seed=0, **kwargs)
    image = "{}/images/000000.png"
    assert (tmp_path / "a" / image.format("train")).read_bytes() != \
        (tmp_path / "b" / image.format("train")).read_bytes()
    assert (tmp_path / "a" / image.format("train")).read_bytes() != \
        (tmp_path / "a" / image.format("val")).read_bytes()


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    root = tmp_path_factory.mktemp("shapes")
    ann_file = generate_synthetic_coco(root, "train", num_images=30, image_size=(96, 128),
                                       seed=0, min_size=12, max_size=48, max_objects=6)
    return json.loads(ann_file.read_text()), root / "train" / "images"


def test_coco_structure(generated: tuple[dict, Path]) -> None:
    data, img_dir = generated
    assert [c["name"] for c in data["categories"]] == ["circle", "square", "triangle"]
    assert [c["id"] for c in data["categories"]] == [1, 2, 3]
    assert len(data["images"]) == 30
    assert {a["category_id"] for a in data["annotations"]} == {1, 2, 3}
    for image in data["images"]:
        assert (image["height"], image["width"]) == (96, 128)
        with Image.open(img_dir / image["file_name"]) as pil:
            assert pil.mode == "RGB" and pil.size == (128, 96)
    for ann in data["annotations"]:
        assert ann["iscrowd"] == 0
        assert isinstance(ann["segmentation"]["counts"], str)


def test_boxes_are_tight_around_exact_masks(generated: tuple[dict, Path]) -> None:
    data, _ = generated
    for ann in data["annotations"]:
        mask = _decode(ann["segmentation"])
        ys, xs = np.nonzero(mask)
        x, y, w, h = ann["bbox"]
        assert (x, y) == (xs.min(), ys.min())
        assert (x + w, y + h) == (xs.max() + 1, ys.max() + 1)
        assert ann["area"] == mask.sum() >= 16


def test_visible_masks_are_disjoint_and_painted_uniformly(generated: tuple[dict, Path]) -> None:
    data, img_dir = generated
    by_image: dict[int, list[np.ndarray]] = {}
    for ann in data["annotations"]:
        by_image.setdefault(ann["image_id"], []).append(_decode(ann["segmentation"]))
    for image in data["images"]:
        masks = np.stack(by_image[image["id"]])
        assert masks.sum(0).max() == 1  # a pixel shows at most one shape
        pixels = np.asarray(Image.open(img_dir / image["file_name"]), dtype=np.float64)
        for mask in masks:
            inside = pixels[mask.astype(bool)]
            assert np.abs(inside - inside.mean(0)).max() < 20  # flat colour + mild noise


def test_render_keeps_occluded_shapes_mostly_visible() -> None:
    rng = np.random.default_rng(0)
    for _ in range(50):
        pixels, objects = synthetic.render_image(rng, 80, 80, 16, 64, 6)
        assert pixels.shape == (80, 80, 3) and pixels.dtype == np.uint8
        assert 1 <= len(objects) <= 6
        for category_id, mask in objects:
            assert category_id in (1, 2, 3)
            assert mask.sum() >= 16


def test_bad_parameters_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="max_size"):
        generate_synthetic_coco(tmp_path, num_images=1, image_size=32, max_size=64)


def test_dataset_generates_once_into_the_cache(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("DETBOX_CACHE", str(tmp_path))
    dataset = SyntheticShapesDataset(num_images=4, image_size=64, max_size=32)
    assert dataset.root.parent == tmp_path / "synthetic"
    ann_file = Path(dataset.ann_file)
    stamp = ann_file.stat().st_mtime_ns
    again = SyntheticShapesDataset(num_images=4, image_size=64, max_size=32)
    assert again.root == dataset.root and ann_file.stat().st_mtime_ns == stamp
    other = SyntheticShapesDataset(split="val", num_images=4, image_size=64, max_size=32)
    assert other.root != dataset.root
    assert not [p for p in dataset.root.iterdir() if p.name.startswith(".tmp")]
    image, sample = dataset[0]
    assert image.shape == (3, 64, 64) and isinstance(sample, DetSample)
    assert sample.gt.masks.dtype.is_floating_point is False
    assert sample.gt.masks.shape[1:] == (64, 64)
    assert dataset.class_names == ["circle", "square", "triangle"]
    assert dataset.cat_ids == [1, 2, 3]


def test_interrupted_generation_leaves_no_dataset(tmp_path: Path, monkeypatch) -> None:
    real_write = synthetic._write_split

    def crash(params, image_dir):
        real_write(params, image_dir)
        raise KeyboardInterrupt

    monkeypatch.setattr(synthetic, "_write_split", crash)
    with pytest.raises(KeyboardInterrupt):
        SyntheticShapesDataset(num_images=3, image_size=64, max_size=32, root=tmp_path)
    assert not (tmp_path / "annotations" / "instances_train.json").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp")]
    monkeypatch.setattr(synthetic, "_write_split", real_write)
    dataset = SyntheticShapesDataset(num_images=3, image_size=64, max_size=32, root=tmp_path)
    assert len(dataset) == 3


def test_root_with_other_parameters_is_an_error(tmp_path: Path) -> None:
    SyntheticShapesDataset(num_images=2, image_size=64, max_size=32, root=tmp_path)
    with pytest.raises(DatasetError, match="other synthetic parameters"):
        SyntheticShapesDataset(num_images=3, image_size=64, max_size=32, root=tmp_path)
