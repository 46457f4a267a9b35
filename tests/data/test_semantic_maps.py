"""Semantic maps (HTC): CocoDataset's seg_prefix, LoadAnnotations(with_seg=True), and the
geometric transforms moving the map with the image (resize, flip, pad with 255)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from coco_factory import CATEGORIES, box_annotation, image_entry, write_coco
from PIL import Image

from detbox.data import CocoDataset
from detbox.data.transforms import Pad, RandomFlip, Resize
from detbox.errors import ConfigError, DatasetError

PIPELINE = [
    {"type": "LoadImage"},
    {"type": "LoadAnnotations", "with_seg": True},
    {"type": "PackDetInputs"},
]


def _semantic_map(height: int, width: int) -> np.ndarray:
    seg = np.full((height, width), 3, dtype=np.uint8)
    seg[:, : width // 2] = 7
    seg[0, 0] = 255
    return seg


def _dataset(tmp_path, pipeline=PIPELINE, write_maps=True, size=(30, 40)) -> CocoDataset:
    images = [image_entry(1), image_entry(2)]
    anns = [box_annotation(1, 1, 1, [2, 3, 10, 12]), box_annotation(2, 2, 2, [5, 5, 20, 10])]
    ann_file, img_dir = write_coco(tmp_path, images, anns, CATEGORIES)
    seg_dir = tmp_path / "stuffthingmaps"
    seg_dir.mkdir()
    if write_maps:
        for image in images:
            Image.fromarray(_semantic_map(*size)).save(seg_dir / image["file_name"])
    return CocoDataset(ann_file, img_dir, pipeline, seg_prefix=seg_dir)


def test_coco_dataset_reads_the_semantic_map_of_each_image(tmp_path):
    dataset = _dataset(tmp_path)
    record = dataset.get_record(0)
    assert record["seg_path"].endswith("stuffthingmaps/img1.png")
    _, sample = dataset[1]
    assert sample.gt_sem_seg.dtype == torch.uint8
    assert torch.equal(sample.gt_sem_seg, torch.from_numpy(_semantic_map(30, 40)))


def test_without_seg_prefix_there_is_no_map_and_with_seg_is_a_clear_error(tmp_path):
    ann_file, img_dir = write_coco(tmp_path, [image_entry(1)], [], CATEGORIES)
    plain = CocoDataset(ann_file, img_dir, [{"type": "LoadImage"}, {"type": "LoadAnnotations"},
                                            {"type": "PackDetInputs"}])
    assert "seg_path" not in plain.get_record(0) and plain[0][1].gt_sem_seg is None
    with pytest.raises(ConfigError, match="seg_prefix"):
        CocoDataset(ann_file, img_dir, PIPELINE)[0]


def test_missing_or_mis_sized_maps_are_dataset_errors(tmp_path):
    with pytest.raises(DatasetError, match="cannot read the semantic map"):
        _dataset(tmp_path / "a", write_maps=False)[0]
    with pytest.raises(DatasetError, match="expected a one-channel 40x30 PNG"):
        _dataset(tmp_path / "b", size=(20, 40))[0]


def _results(height=30, width=40) -> dict:
    seg = torch.from_numpy(_semantic_map(height, width))
    return {"img": torch.zeros(3, height, width), "img_shape": (height, width),
            "ori_shape": (height, width), "scale_factor": (1.0, 1.0), "flip": None,
            "gt_boxes": torch.tensor([[2.0, 3, 12, 15]]), "gt_labels": torch.tensor([0]),
            "gt_seg": seg}


def test_resize_flip_and_pad_move_the_map_with_the_image():
    results = Resize(scale=(80, 60), keep_ratio=True)(_results())
    seg = results["gt_seg"]
    assert seg.shape == (60, 80) and seg.dtype == torch.uint8
    # Nearest: every output pixel is the source pixel it maps to.
    ys, xs = torch.arange(60) * 30 // 60, torch.arange(80) * 40 // 80
    expected = torch.from_numpy(_semantic_map(30, 40))[ys][:, xs]
    assert torch.equal(seg, expected)

    results = RandomFlip(prob=1.0)(results)
    assert torch.equal(results["gt_seg"], expected.flip(-1))
    assert results["gt_seg"][0, -1] == 255 and results["gt_seg"][10, 0] == 3

    results = Pad(size_divisor=32)(results)
    padded = results["gt_seg"]
    assert padded.shape == (64, 96) == results["img"].shape[-2:]
    assert torch.equal(padded[:60, :80], expected.flip(-1))
    assert (padded[60:] == 255).all() and (padded[:, 80:] == 255).all()


def test_crop_rotate_and_expand_keep_the_map_aligned_with_the_image():
    from detbox.data.transforms.crop import crop_results
    from detbox.data.transforms.expand import Expand
    from detbox.data.transforms.rotate import RandomRotate90

    results = _results()
    results["img"] = results["gt_seg"][None].float().repeat(3, 1, 1)  # image == map
    results = crop_results(results, (5, 4, 35, 24), box_filter="clip")
    assert torch.equal(results["gt_seg"], torch.from_numpy(_semantic_map(30, 40))[4:24, 5:35])
    results = RandomRotate90(prob=1.0, angles=(90,))(results)
    assert torch.equal(results["gt_seg"].float(), results["img"][0])
    results = Expand(ratio_range=(2.0, 2.0), prob=1.0)(results)
    seg, img = results["gt_seg"], results["img"][0]
    assert seg.shape == img.shape == (60, 40)
    inside = seg != 255
    assert int(inside.sum()) == 20 * 30 and torch.equal(seg[inside].float(), img[inside])
