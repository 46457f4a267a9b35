"""``detbox.data.inference``: image paths and arrays to the test pipeline's batch."""

import numpy as np
import pytest
import torch
from PIL import Image

from detbox.config import ConfigDict
from detbox.data.inference import (
    build_test_pipeline,
    load_image,
    prepare_batch,
    read_rgb,
    upright_array,
)
from detbox.errors import ConfigError, DatasetError

PIPELINE = [
    {"type": "LoadImage"},
    {"type": "LoadAnnotations"},
    {"type": "Resize", "scale": (64, 64), "keep_ratio": True},
    {"type": "Normalize", "mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0]},
    {"type": "PackDetInputs"},
]


def test_path_and_array_load_to_the_same_record(tmp_path):
    array = np.random.default_rng(0).integers(0, 256, (30, 50, 3), dtype=np.uint8)
    Image.fromarray(array).save(tmp_path / "a.png")
    from_path = load_image(tmp_path / "a.png", index=3)
    from_array = load_image(array, index=4)
    assert torch.equal(from_path["img"], from_array["img"])
    assert from_path["ori_shape"] == from_array["ori_shape"] == (30, 50)
    assert (from_path["image_id"], from_path["file_name"]) == (3, "a.png")
    assert from_array["file_name"] == "<array 4>"
    assert np.array_equal(upright_array(from_path), array)
    assert np.array_equal(read_rgb(tmp_path / "a.png"), array) and read_rgb(array) is array
    with pytest.raises(ConfigError, match="uint8 RGB"):
        load_image(array[..., :2])
    with pytest.raises(DatasetError, match="not found"):
        load_image(tmp_path / "missing.png")


def test_pipeline_drops_loading_steps_and_batches(tmp_path):
    section = {"dataset": {"pipeline": PIPELINE}}
    steps = build_test_pipeline(ConfigDict({"test_dataloader": section}))
    assert "LoadImage" not in repr(steps) and "LoadAnnotations" not in repr(steps)
    images = [np.zeros((30, 50, 3), np.uint8), np.zeros((50, 20, 3), np.uint8)]
    batch = prepare_batch(ConfigDict({"test_pipeline": PIPELINE}), images, first_index=7)
    assert [s.image_id for s in batch.samples] == [7, 8]
    assert [s.ori_shape for s in batch.samples] == [(30, 50), (50, 20)]
    with pytest.raises(ConfigError, match="no test_pipeline"):
        build_test_pipeline(ConfigDict({}))
