"""Loading images of any mode, and skipping unreadable ones during training."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from coco_factory import CATEGORIES, box_annotation, image_entry, write_coco
from PIL import Image

from detbox.data import CocoDataset, build_dataloader
from detbox.data.skipping import UnreadableImage
from detbox.data.transforms import LoadImage
from detbox.errors import DatasetError

TRAIN_PIPELINE = [{"type": "LoadImage"}, {"type": "LoadAnnotations"}, {"type": "Normalize"},
                  {"type": "PackDetInputs"}]


def _load(path: Path) -> torch.Tensor:
    image = LoadImage()({"img_path": str(path)})["img"]
    assert image.dtype == torch.uint8 and image.shape[0] == 3
    return image


def test_greyscale_and_palette_images_become_three_equal_channels(tmp_path: Path) -> None:
    grey = np.arange(12 * 16, dtype=np.uint8).reshape(12, 16)
    Image.fromarray(grey, mode="L").save(tmp_path / "grey.png")
    image = _load(tmp_path / "grey.png")
    assert all(torch.equal(image[c], torch.from_numpy(grey)) for c in range(3))
    palette = Image.fromarray(grey, mode="L").convert("P")
    palette.save(tmp_path / "palette.png")
    assert _load(tmp_path / "palette.png").shape == (3, 12, 16)


def test_rgba_drops_alpha_and_keeps_colours(tmp_path: Path) -> None:
    rgba = np.zeros((8, 10, 4), dtype=np.uint8)
    rgba[..., 0], rgba[..., 1], rgba[..., 2], rgba[..., 3] = 200, 100, 50, 0
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "rgba.png")
    image = _load(tmp_path / "rgba.png")
    assert image[:, 0, 0].tolist() == [200, 100, 50]


def test_sixteen_bit_images_are_scaled_not_clipped(tmp_path: Path) -> None:
    values = np.array([[0, 257, 32896, 65535]], dtype=np.uint16).repeat(3, axis=0)
    Image.fromarray(values).save(tmp_path / "deep.png")
    with Image.open(tmp_path / "deep.png") as pil:
        assert pil.mode.startswith("I;16")  # what the test is about
    image = _load(tmp_path / "deep.png")
    assert image[0, 0].tolist() == [0, 1, 128, 255]
    Image.fromarray(values.astype(np.float32) / 65535).save(tmp_path / "float.tif")
    assert _load(tmp_path / "float.tif")[1, 0].tolist() == [0, 1, 128, 255]


def test_exif_rotated_photo_lines_up_with_its_annotations(tmp_path: Path) -> None:
    # Stored 20 wide x 10 high, bright in the left 5 columns; orientation 6 = rotate 90 cw to
    # display, so the displayed image is 10 x 20 with the bright band in the top rows.
    pixels = np.zeros((10, 20), dtype=np.uint8)
    pixels[:, :5] = 255
    img_dir = tmp_path / "images"
    img_dir.mkdir()
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(pixels, mode="L").save(img_dir / "img1.jpg", exif=exif, quality=100)
    images = [{"id": 1, "file_name": "img1.jpg", "width": 10, "height": 20}]
    ann = box_annotation(1, 1, 1, [0, 0, 10, 5])
    ann_file, _ = write_coco(tmp_path, images, [ann], CATEGORIES, write_images=False)
    image, sample = CocoDataset(ann_file, img_dir, TRAIN_PIPELINE[:2] + [
        {"type": "PackDetInputs"}])[0]
    assert image.shape == (3, 20, 10) and sample.gt.boxes.tolist() == [[0.0, 0.0, 10.0, 5.0]]
    assert image[:, :5].mean() > 200 and image[:, 6:].mean() < 50


def _dataset_with_bad_images(tmp_path: Path, bad: int, **kwargs) -> tuple[Path, Path]:
    images = [image_entry(i, 32, 32) for i in range(1, 7)]
    anns = [box_annotation(i, i, 1, [4, 4, 10, 10]) for i in range(1, 7)]
    ann_file, img_dir = write_coco(tmp_path, images, anns, CATEGORIES)
    for i in range(1, bad + 1):
        data = (img_dir / f"img{i}.png").read_bytes()
        (img_dir / f"img{i}.png").write_bytes(data[: len(data) // 2])  # truncated
    return ann_file, img_dir


def _loader(ann_file: Path, img_dir: Path, num_workers: int = 0, **dataset_kwargs):
    dataset = dict(type="CocoDataset", ann_file=str(ann_file), img_dir=str(img_dir),
                   pipeline=TRAIN_PIPELINE, **dataset_kwargs)
    return build_dataloader(dict(batch_size=2, num_workers=num_workers, dataset=dataset),
                            training=True, seed=0)


def test_training_skips_a_truncated_image_with_a_warning(tmp_path: Path, caplog) -> None:
    ann_file, img_dir = _dataset_with_bad_images(tmp_path, bad=1)
    loader = _loader(ann_file, img_dir)
    with caplog.at_level(logging.WARNING, logger="detbox.data"):
        for epoch in range(2):
            loader.set_epoch(epoch)
            batches = list(loader)
            assert sum(len(b) for b in batches) == 6
            assert all(b.images.shape[0] == len(b.samples) for b in batches)
    warnings = [r.getMessage() for r in caplog.records if "skipped" in r.getMessage()]
    assert len(warnings) == 1 and "img1.png" in warnings[0] and "1 of at most 10" in warnings[0]
    assert list(loader.skipped.reasons) == [str(img_dir / "img1.png")]
    assert all("skipped_images" not in s.extra for b in batches for s in b.samples)


def test_too_many_unreadable_images_stop_training(tmp_path: Path) -> None:
    ann_file, img_dir = _dataset_with_bad_images(tmp_path, bad=3)
    with pytest.raises(DatasetError, match="3 images could not be loaded, more than "
                                           "max_skipped_images=2"):
        for _ in _loader(ann_file, img_dir, max_skipped_images=2):
            pass
    with pytest.raises(DatasetError, match="cannot read image"):
        for _ in _loader(ann_file, img_dir, max_skipped_images=0):
            pass


def test_skipped_images_are_counted_across_worker_processes(tmp_path: Path, caplog) -> None:
    ann_file, img_dir = _dataset_with_bad_images(tmp_path, bad=2)
    loader = _loader(ann_file, img_dir, num_workers=1)
    with caplog.at_level(logging.WARNING, logger="detbox.data"):
        assert sum(len(b) for b in loader) == 6
    assert sorted(Path(p).name for p in loader.skipped.reasons) == ["img1.png", "img2.png"]


def test_evaluation_data_marks_an_unreadable_image_instead_of_replacing_it(
        tmp_path: Path) -> None:
    ann_file, img_dir = _dataset_with_bad_images(tmp_path, bad=1)
    dataset = CocoDataset(ann_file, img_dir, test_mode=True, max_skipped_images=5)
    assert dataset.max_skipped_images == 0
    item = dataset[0]
    assert isinstance(item, UnreadableImage)
    assert (Path(item.path).name, item.reason) == ("img1.png", "truncated")
    assert dataset[1][1].file_name == "img2.png"
