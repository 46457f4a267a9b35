"""Pretrained backbones: ``torchvision://`` / ``https://`` names resolved through torch's hub cache.

No test touches the network: ``torch.hub.download_url_to_file`` is replaced by a function that
fails the test, writes a file, or raises as an offline machine would.
"""

from __future__ import annotations

import urllib.error
import warnings
from pathlib import Path

import pytest
import torch
import torchvision

from detbox.errors import CheckpointError, ConfigError
from detbox.models.pretrained import cache_path, checkpoint_url, resolve_checkpoint
from detbox.registry import MODELS
from tests.models._helpers import tiny_retinanet_cfg

R18_URL = torchvision.models.ResNet18_Weights.IMAGENET1K_V1.url


@pytest.fixture
def torch_home(tmp_path, monkeypatch) -> Path:
    """An empty TORCH_HOME; any download attempt fails the test."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))

    def no_download(*args, **kwargs):
        pytest.fail(f"unexpected download: {args}")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_download)
    return tmp_path / "torch_home"


def save_random_resnet18(path: Path) -> dict[str, torch.Tensor]:
    torch.manual_seed(3)
    state = torchvision.models.resnet18(weights=None).state_dict()
    for key, value in state.items():
        if key.endswith("running_var"):
            value.copy_(torch.rand_like(value) + 0.5)  # a valid variance: training stays finite
        elif value.is_floating_point():
            value.copy_(torch.randn_like(value) * 0.05)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return state


def frozen_retinanet_cfg(checkpoint: str | None) -> dict:
    cfg = tiny_retinanet_cfg()
    cfg["backbone"] = {"type": "ResNet", "depth": 18, "out_indices": (1, 2, 3)}  # FrozenBN, stage 1
    cfg["init_cfg"] = {"backbone_checkpoint": checkpoint} if checkpoint else None
    return cfg


def test_torchvision_names_map_to_torchvision_urls_and_the_hub_cache(torch_home):
    assert checkpoint_url("torchvision://resnet18") == R18_URL
    assert checkpoint_url("torchvision://resnet50") == \
        torchvision.models.ResNet50_Weights.IMAGENET1K_V1.url
    assert checkpoint_url("https://example.com/w/r.pth") == "https://example.com/w/r.pth"
    assert checkpoint_url("weights/r50.pth") is None
    assert cache_path(R18_URL) == torch_home / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    assert resolve_checkpoint("weights/r50.pth") == Path("weights/r50.pth")
    with pytest.raises(ConfigError, match="Did you mean 'torchvision://resnet50'"):
        MODELS.build(frozen_retinanet_cfg("torchvision://resnet5O"))  # at build, no I/O


def test_cached_torchvision_weights_load_into_the_backbone_without_network(torch_home):
    state = save_random_resnet18(cache_path(R18_URL))
    model = MODELS.build(frozen_retinanet_cfg("torchvision://resnet18"))
    assert not torch.equal(model.backbone.conv1.weight, state["conv1.weight"])  # not at build
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert "torchvision://resnet18" in model.init_weights()
    own = model.backbone.state_dict()
    for key, value in state.items():
        if not key.startswith("fc.") and not key.endswith("num_batches_tracked"):
            assert torch.equal(own[key], value), key


def test_c4_head_res5_loads_from_the_same_uri(torch_home):
    state = save_random_resnet18(cache_path(R18_URL))
    model = MODELS.build({
        "type": "FasterRCNN",
        "backbone": {"type": "ResNet", "depth": 18, "out_indices": (2,), "num_stages": 3},
        "rpn_head": {"type": "RPNHead", "in_channels": 256, "feat_channels": 16,
                     "anchor_generator": {"type": "AnchorGenerator", "strides": [16]}},
        "roi_head": {"type": "Res5RoIHead", "depth": 18, "bbox_head": {
            "type": "ConvFCBBoxHead", "in_channels": 512, "with_avg_pool": True, "num_fcs": 0,
            "num_classes": 2}},
        "init_cfg": {"backbone_checkpoint": "torchvision://resnet18"},
    })
    model.init_weights()
    res5 = {k.split("layer4.", 1)[1]: v for k, v in state.items() if k.startswith("layer4.")}
    own = {k.split(".", 1)[1]: v for k, v in model.roi_head.state_dict().items()
           if k.startswith("res5.")}
    assert own and all(torch.equal(own[k], res5[k]) for k in own)
    assert torch.equal(model.backbone.layer3[0].conv1.weight, state["layer3.0.conv1.weight"])


def test_a_missing_file_is_downloaded_once_with_its_hash_prefix(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    calls = []

    def fake_download(url, dst, hash_prefix=None, progress=True):
        calls.append((url, Path(dst), hash_prefix))
        save_random_resnet18(Path(dst))

    monkeypatch.setattr(torch.hub, "download_url_to_file", fake_download)
    assert resolve_checkpoint("torchvision://resnet18") == cache_path(R18_URL)
    assert resolve_checkpoint("torchvision://resnet18") == cache_path(R18_URL)
    assert calls == [(R18_URL, cache_path(R18_URL), "f37072fd")]
    url = "https://example.com/models/my_backbone.pth"
    assert resolve_checkpoint(url) == tmp_path / "hub" / "checkpoints" / "my_backbone.pth"
    assert calls[-1] == (url, cache_path(url), None)


@pytest.mark.parametrize("error", [urllib.error.URLError("[Errno -3] name resolution failed"),
                                   OSError("Network is unreachable")])
def test_offline_error_names_the_url_the_cache_path_and_how_to_skip(torch_home, monkeypatch,
                                                                    error):
    def offline(*args, **kwargs):
        raise error

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    model = MODELS.build(frozen_retinanet_cfg("torchvision://resnet18"))
    with pytest.raises(CheckpointError) as info:
        model.init_weights()
    message = str(info.value)
    assert "\n" not in message
    assert R18_URL in message and "torchvision://resnet18" in message
    assert str(cache_path(R18_URL)) in message
    assert "model.init_cfg=None" in message and "--cfg-options" in message


def test_a_checkpoint_for_another_depth_is_a_clear_error(torch_home):
    model = MODELS.build(frozen_retinanet_cfg("torchvision://resnet50"))
    with pytest.raises(ConfigError, match="use 'torchvision://resnet18'"):
        model.init_weights()


def test_a_plain_path_still_loads(tmp_path, torch_home):
    state = save_random_resnet18(tmp_path / "r18.pth")
    model = MODELS.build(frozen_retinanet_cfg(str(tmp_path / "r18.pth")))
    model.init_weights()
    assert torch.equal(model.backbone.layer1[0].conv1.weight, state["layer1.0.conv1.weight"])
