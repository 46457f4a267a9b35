"""Publishing: training state dropped, hash in the name, loadable everywhere."""

import json

import numpy as np
import pytest
import torch

from detbox.apis.inference import inference_detector, init_detector
from detbox.deploy.publish import file_sha256, publish_checkpoint, published_name
from detbox.engine.checkpoint import extract_state_dict, load_checkpoint


def test_published_name():
    assert published_name("out/model.pth", "abcdef0123", ".pth").name == "model-abcdef01.pth"
    assert published_name("m", "0" * 64, ".safetensors").name == "m-00000000.safetensors"


@pytest.mark.parametrize("safetensors", [False, True])
def test_publish_keeps_weights_and_meta_only(retina_files, tmp_path, safetensors):
    config, checkpoint = retina_files
    result = publish_checkpoint(checkpoint, tmp_path / "retina.pth", safetensors=safetensors)
    sha = file_sha256(result.path)
    assert result.sha256 == sha
    suffix = ".safetensors" if safetensors else ".pth"
    assert result.path.name == f"retina-{sha[:8]}{suffix}"
    assert {"optimizer", "rng", "epoch", "iteration"} <= set(result.dropped)
    assert not list(tmp_path.glob(".publish.*"))  # no temporary file left behind

    published = load_checkpoint(result.path)
    original = load_checkpoint(checkpoint)
    assert "optimizer" not in published and "rng" not in published
    assert published["meta"]["class_names"] == original["meta"]["class_names"]
    weights, reference = extract_state_dict(published), extract_state_dict(original)
    assert weights.keys() == reference.keys()
    assert all(torch.equal(weights[k], reference[k]) for k in reference)
    assert all(v.device.type == "cpu" for v in weights.values())
    assert result.path.stat().st_size < checkpoint.stat().st_size


def test_safetensors_header_carries_meta_and_the_model_loads(retina_files, tmp_path):
    from safetensors import safe_open

    config, checkpoint = retina_files
    result = publish_checkpoint(checkpoint, tmp_path / "retina", safetensors=True)
    with safe_open(str(result.path), framework="pt") as f:
        assert json.loads(f.metadata()["detbox_meta"])["cat_ids"] == [1, 2, 3]
    image = np.random.default_rng(0).integers(0, 255, (80, 100, 3), dtype=np.uint8)
    expected = inference_detector(init_detector(config, checkpoint, device="cpu"), image)
    got = inference_detector(init_detector(config, result.path, device="cpu"), image)
    assert len(got) == len(expected) > 0
    assert torch.equal(got.boxes, expected.boxes) and torch.equal(got.scores, expected.scores)
