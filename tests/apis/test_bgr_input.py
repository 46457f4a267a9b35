"""``Normalize(to_rgb=False)``: caffe-style networks see BGR minus the mean, std 1, everywhere a
pipeline is built from the config (training, ``init_detector`` / ``detbox infer``, export)."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch
from PIL import Image

from detbox.apis.inference import inference_detector, init_detector
from detbox.data.inference import build_test_pipeline
from detbox.data.transforms import Normalize
from detbox.deploy.onnx_export import _pipeline_steps
from detbox.errors import ConfigError
from detbox.structures import DetSample, ImageBatch
from detbox.visualization import denormalize
from tests.tiny_detector import RETINANET, write_tiny

CAFFE_MEAN = [103.530, 116.280, 123.675]
CAFFE_NORM = {"mean": CAFFE_MEAN, "std": [1.0, 1.0, 1.0], "to_rgb": False}
CAFFE_PIPELINE = [
    {"type": "LoadImage"},
    {"type": "Normalize", **CAFFE_NORM},
    {"type": "PackDetInputs"},
]
CAFFE_RETINANET = copy.deepcopy(RETINANET)
CAFFE_RETINANET["backbone"].update(depth=50, style="caffe")  # GN: lively random features
CAFFE_RETINANET["neck"]["in_channels"] = [512, 1024, 2048]


def _image(height: int = 64, width: int = 96) -> np.ndarray:
    return np.random.default_rng(3).integers(0, 256, (height, width, 3), dtype=np.uint8)


def test_to_rgb_false_flips_to_bgr_before_subtracting_the_bgr_mean():
    rgb = torch.from_numpy(_image(5, 7)).permute(2, 0, 1).contiguous()
    out = Normalize(**CAFFE_NORM)({"img": rgb})
    for channel, source in enumerate((2, 1, 0)):  # B, G, R
        torch.testing.assert_close(out["img"][channel], rgb[source].float() - CAFFE_MEAN[channel])
    assert out["img_norm"] == {"mean": tuple(CAFFE_MEAN), "std": (1.0, 1.0, 1.0),
                               "to_rgb": False}
    kept = Normalize(mean=CAFFE_MEAN, std=[1.0, 1.0, 1.0])({"img": rgb})
    torch.testing.assert_close(kept["img"][0], rgb[0].float() - CAFFE_MEAN[0])
    assert "to_rgb=False" in repr(Normalize(**CAFFE_NORM))
    with pytest.raises(ConfigError, match="to_rgb"):
        Normalize(to_rgb="bgr")


def test_denormalize_gives_back_the_rgb_picture():
    image = _image(6, 4)
    out = Normalize(**CAFFE_NORM)({"img": torch.from_numpy(image).permute(2, 0, 1)})
    assert np.array_equal(denormalize(out["img"], out["img_norm"]), image)


@pytest.fixture(scope="module")
def caffe_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("caffe")
    config, checkpoint = write_tiny(folder, CAFFE_RETINANET)
    cfg = json.loads(config.read_text())
    cfg["test_pipeline"] = CAFFE_PIPELINE
    config.write_text(json.dumps(cfg))
    return config, checkpoint


def _predict_on(model, tensor: torch.Tensor):
    sample = DetSample(image_id=0, file_name="img.png", ori_shape=tuple(tensor.shape[-2:]),
                       img_shape=tuple(tensor.shape[-2:]))
    with torch.no_grad():
        return model.predict(ImageBatch(images=tensor[None], samples=[sample]))[0]


def test_init_detector_feeds_the_caffe_network_bgr_minus_the_mean(caffe_files, tmp_path):
    config, checkpoint = caffe_files
    model = init_detector(config, checkpoint, device="cpu")
    image = _image()
    path = tmp_path / "img.png"
    Image.fromarray(image).save(path)
    got = inference_detector(model, str(path))
    rgb = torch.from_numpy(image).permute(2, 0, 1).float()
    mean = torch.tensor(CAFFE_MEAN).view(3, 1, 1)
    expected = _predict_on(model, rgb.flip(0) - mean)
    assert len(got) > 0 and len(got) == len(expected)
    torch.testing.assert_close(got.boxes, expected.boxes, rtol=0, atol=1e-4)
    torch.testing.assert_close(got.scores, expected.scores, rtol=0, atol=1e-5)
    assert torch.equal(got.labels, expected.labels)
    from_array = inference_detector(model, image)  # what the server passes
    torch.testing.assert_close(from_array.boxes, got.boxes, rtol=0, atol=1e-4)
    as_rgb = _predict_on(model, rgb - mean)  # the same network fed RGB predicts otherwise
    assert 0 < got.scores.min() < got.scores.max() < 1
    assert len(as_rgb) != len(got) or not torch.allclose(as_rgb.scores, got.scores, atol=1e-3)


def test_test_pipeline_and_exported_steps_keep_to_rgb(caffe_files):
    config, _ = caffe_files
    cfg = json.loads(config.read_text())
    pipeline = build_test_pipeline(cfg)
    assert any(isinstance(t, Normalize) and not t.to_rgb for t in pipeline.transforms)
    normalize = [s for s in _pipeline_steps(cfg) if s["type"] == "Normalize"]
    assert normalize == [{"type": "Normalize", **CAFFE_NORM}]
