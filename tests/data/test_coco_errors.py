"""Every broken-dataset case fails at load time with one line naming the file and the fix."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from coco_factory import CATEGORIES, box_annotation, image_entry
from PIL import Image

from detbox.data import CocoDataset
from detbox.errors import DatasetError


def _load_error(ann_file: Path, img_dir: Path, **kwargs) -> str:
    with pytest.raises(DatasetError) as info:
        CocoDataset(ann_file, img_dir, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_unknown_category_names_annotation_and_category(make_coco) -> None:
    ann_file, img_dir = make_coco([image_entry(1)], [box_annotation(17, 1, 9, [1, 1, 4, 4])],
                                  CATEGORIES)
    message = _load_error(ann_file, img_dir)
    assert str(ann_file) in message
    assert "annotation 17" in message and "category_id 9" in message


@pytest.mark.parametrize("bbox", [[1, 1, 0, 4], [1, 1, 4, -2]])
def test_degenerate_box_names_annotation_and_image(make_coco, bbox) -> None:
    ann_file, img_dir = make_coco([image_entry(5)], [box_annotation(3, 5, 1, bbox)], CATEGORIES)
    message = _load_error(ann_file, img_dir)
    assert str(ann_file) in message and "annotation 3" in message and "img5.png" in message
    assert "fix or remove" in message


def test_missing_image_names_path_and_img_dir(make_coco) -> None:
    ann_file, img_dir = make_coco([image_entry(1), image_entry(2)], [], CATEGORIES,
                                  write_images=False)
    message = _load_error(ann_file, img_dir)
    assert str(img_dir / "img1.png") in message and "img_dir" in message
    assert "1 more" in message


def test_malformed_json(tmp_path: Path) -> None:
    ann_file = tmp_path / "broken.json"
    ann_file.write_text('{"images": [}')
    message = _load_error(ann_file, tmp_path)
    assert str(ann_file) in message and "not valid JSON" in message and "line 1" in message


def test_missing_annotation_file(tmp_path: Path) -> None:
    message = _load_error(tmp_path / "nope.json", tmp_path)
    assert "nope.json" in message and "not found" in message


def test_missing_top_level_key(make_coco) -> None:
    ann_file, img_dir = make_coco([image_entry(1)], [], CATEGORIES)
    ann_file.write_text('{"images": [], "annotations": []}')
    message = _load_error(ann_file, img_dir)
    assert str(ann_file) in message and "'categories'" in message


def test_missing_annotation_key(make_coco) -> None:
    ann = box_annotation(4, 1, 1, [1, 1, 2, 2])
    del ann["bbox"]
    ann_file, img_dir = make_coco([image_entry(1)], [ann], CATEGORIES)
    message = _load_error(ann_file, img_dir)
    assert "annotation entry #0" in message and "'bbox'" in message


def test_missing_image_key(make_coco) -> None:
    image = image_entry(1)
    del image["width"]
    ann_file, img_dir = make_coco([image], [], CATEGORIES, write_images=False)
    assert "'width'" in _load_error(ann_file, img_dir)


def test_annotation_of_unknown_image(make_coco) -> None:
    ann_file, img_dir = make_coco([image_entry(1)], [box_annotation(8, 99, 1, [1, 1, 2, 2])],
                                  CATEGORIES)
    message = _load_error(ann_file, img_dir)
    assert "annotation 8" in message and "image id 99" in message


def test_duplicate_annotation_ids(make_coco) -> None:
    anns = [box_annotation(1, 1, 1, [1, 1, 2, 2]), box_annotation(1, 1, 2, [1, 1, 2, 2])]
    ann_file, img_dir = make_coco([image_entry(1)], anns, CATEGORIES)
    assert "duplicate annotation id 1" in _load_error(ann_file, img_dir)


def test_corrupt_image_file_is_named(make_coco) -> None:
    ann_file, img_dir = make_coco([image_entry(1)], [], CATEGORIES)
    (img_dir / "img1.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not an image")
    dataset = CocoDataset(ann_file, img_dir)
    with pytest.raises(DatasetError, match="img1.png: cannot read image"):
        dataset[0]


def test_image_size_differing_from_annotation(make_coco) -> None:
    ann_file, img_dir = make_coco([image_entry(1)], [], CATEGORIES)
    Image.fromarray(np.zeros((10, 12, 3), np.uint8)).save(img_dir / "img1.png")
    with pytest.raises(DatasetError, match="image is 12x10 pixels .* says 40x30"):
        CocoDataset(ann_file, img_dir)[0]


def test_bad_polygon_names_annotation(make_coco) -> None:
    ann = box_annotation(6, 1, 1, [1, 1, 4, 4], segmentation=[[1, 1, 4, 1]])
    ann_file, img_dir = make_coco([image_entry(1)], [ann], CATEGORIES)
    dataset = CocoDataset(ann_file, img_dir, [{"type": "LoadImage"},
                                              {"type": "LoadAnnotations", "with_mask": True}])
    with pytest.raises(DatasetError, match="annotation 6 .*at least 3"):
        dataset[0]
