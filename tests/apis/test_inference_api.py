"""The Python inference API: paths, arrays and lists; drawing; async inference."""

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch
from PIL import Image

from detbox.apis.async_inference import async_inference_detector
from detbox.apis.inference import inference_detector, init_detector, show_result
from detbox.errors import ConfigError
from detbox.structures import Instances
from tests.tiny_detector import write_tiny


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    config, checkpoint = write_tiny(tmp_path_factory.mktemp("api"))
    return init_detector(config, checkpoint, device="cpu")


@pytest.fixture(scope="module")
def image():
    return np.random.default_rng(1).integers(0, 256, (60, 80, 3), dtype=np.uint8)


def test_path_array_and_list_give_the_same_detections(model, image, tmp_path):
    path = tmp_path / "img.png"
    Image.fromarray(image).save(path)
    from_array = inference_detector(model, image)
    from_path = inference_detector(model, str(path))
    batched = inference_detector(model, [image, path, image[:40]], batch_size=2)
    assert isinstance(from_array, Instances) and len(from_array) > 0
    assert isinstance(batched, list) and len(batched) == 3
    for other in (from_path, batched[0], batched[1]):
        assert torch.allclose(other.boxes, from_array.boxes, atol=1e-4)
        assert torch.allclose(other.scores, from_array.scores, atol=1e-5)
    assert batched[2].boxes[:, 3].max() <= 40  # boxes in the smaller image's coordinates
    with pytest.raises(ConfigError, match="uint8 RGB"):
        inference_detector(model, image.astype(np.float32))


def test_show_result_draws_and_saves(model, image, tmp_path):
    result = inference_detector(model, image)
    out = tmp_path / "vis" / "shown.png"
    picture = show_result(image, result, model=model, score_thr=0.0, out_file=out)
    drawn = np.asarray(Image.open(out))
    assert picture.size == (80, 60) and drawn.shape == image.shape
    assert (drawn != image).any(axis=2).mean() > 0.05  # boxes and labels cover the image
    blank = np.asarray(show_result(image, result, class_names=["a", "b", "c"], score_thr=1.1))
    assert np.array_equal(blank, image)  # nothing above the threshold: nothing drawn


def test_async_inference_matches_sync(model, image):
    results = asyncio.run(async_inference_detector(model, [image, image]))
    expected = inference_detector(model, image)
    assert len(results) == 2 and torch.allclose(results[1].boxes, expected.boxes, atol=1e-4)


class _SlowModel(torch.nn.Module):
    """Stands in for a detector whose forward takes 0.3 s (the wait releases the GIL)."""

    def __init__(self, real):
        super().__init__()
        self.real, self.cfg = real, real.cfg

    def predict(self, batch):
        time.sleep(0.3)
        return self.real.predict(batch)


def test_other_coroutines_run_while_the_model_works(model, image):
    slow = _SlowModel(model)

    async def main():
        ticks = 0
        task = asyncio.create_task(
            async_inference_detector(slow, image, executor=ThreadPoolExecutor(1)))
        while not task.done():
            ticks += 1
            await asyncio.sleep(0.01)
        return ticks, await task

    ticks, result = asyncio.run(main())
    assert ticks >= 10 and isinstance(result, Instances)


def test_detectors_declare_cfg_and_dataset_meta(model):
    from detbox.apis.build import build_detector
    from tests.tiny_detector import CAT_IDS, CLASS_NAMES, RETINANET

    bare = build_detector(dict(RETINANET, bbox_head={**RETINANET["bbox_head"], "num_classes": 3}),
                          CLASS_NAMES, CAT_IDS)
    assert bare.cfg is None
    assert bare.dataset_meta == {"class_names": CLASS_NAMES, "cat_ids": CAT_IDS}
    assert model.cfg["test_pipeline"] and model.dataset_meta["class_names"] == CLASS_NAMES
    with pytest.raises(ConfigError, match="no cfg"):
        inference_detector(bare, np.zeros((20, 20, 3), np.uint8))
