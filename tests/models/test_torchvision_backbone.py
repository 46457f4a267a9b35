"""TorchvisionBackbone: derived stage nodes, features equal to torchvision's own module on the
same weights, FrozenBN, freezing, and a Faster R-CNN whose FPN reads its in_channels from it."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn
from torchvision.ops.misc import FrozenBatchNorm2d

from detbox.errors import CheckpointError, ConfigError
from detbox.models.backbones import TorchvisionBackbone
from detbox.models.backbones.feature_freezing import freeze, modules_before
from tests.models.two_stage._tiny import build, rectangles_batch, tiny_two_stage_cfg, train_steps

# name -> (channels at strides 4, 8, 16, 32), from each paper's architecture table.
CHANNELS = {
    "mobilenet_v3_small": [16, 24, 48, 576],
    "regnet_y_400mf": [48, 104, 208, 440],
    "swin_t": [96, 192, 384, 768],
    "resnet18": [64, 128, 256, 512],
}


@pytest.mark.parametrize("name", sorted(CHANNELS))
def test_levels_channels_and_strides(name):
    backbone = TorchvisionBackbone(model_name=name, out_indices=(0, 1, 2, 3))
    assert backbone.out_channels == CHANNELS[name]
    assert backbone.out_strides == [4, 8, 16, 32]
    feats = backbone(torch.randn(2, 3, 64, 64))
    assert [tuple(f.shape) for f in feats] == [
        (2, c, 64 // s, 64 // s) for c, s in zip(CHANNELS[name], [4, 8, 16, 32])]


def _reference_features(model: nn.Module, nodes: list[str], images: torch.Tensor,
                        channels_last: bool) -> list[torch.Tensor]:
    """The outputs of ``nodes`` while torchvision's own module classifies ``images``."""
    found = {}
    modules = dict(model.named_modules())
    hooks = [modules[n].register_forward_hook(lambda m, i, o, n=n: found.__setitem__(n, o))
             for n in nodes]
    model(images)
    for hook in hooks:
        hook.remove()
    return [found[n].permute(0, 3, 1, 2) if channels_last else found[n] for n in nodes]


@pytest.mark.parametrize("name", ["mobilenet_v3_small", "regnet_y_400mf", "swin_t"])
def test_weights_file_gives_torchvisions_features(tmp_path, name):
    torch.manual_seed(0)
    reference = torchvision.models.get_model(name, weights=None).eval()
    with torch.no_grad():  # non-trivial BN statistics, so that loading them shows
        for module in reference.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.uniform_(-0.1, 0.1)
                module.running_var.uniform_(0.5, 1.5)
    torch.save(reference.state_dict(), tmp_path / "weights.pth")
    torch.manual_seed(1)
    backbone = TorchvisionBackbone(model_name=name, out_indices=(1, 2, 3),
                                   weights_file=str(tmp_path / "weights.pth")).eval()
    images = torch.randn(1, 3, 64, 64)
    before = backbone(images)
    assert "pretrained" in backbone.init_weights()
    expected = _reference_features(reference, backbone.return_nodes, images,
                                   backbone.channels_last)
    assert not torch.allclose(before[-1], expected[-1])
    with torch.no_grad():
        for ours, theirs in zip(backbone(images), expected):
            torch.testing.assert_close(ours, theirs)


def test_frozen_bn_loads_the_statistics(tmp_path):
    torch.manual_seed(0)
    reference = torchvision.models.mobilenet_v3_small(weights=None).eval()
    with torch.no_grad():
        for module in reference.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_var.uniform_(0.5, 1.5)
    torch.save(reference.state_dict(), tmp_path / "w.pth")
    backbone = TorchvisionBackbone(model_name="mobilenet_v3_small", frozen_bn=True,
                                   weights_file=str(tmp_path / "w.pth"))
    assert not any(isinstance(m, nn.BatchNorm2d) for m in backbone.modules())
    assert sum(isinstance(m, FrozenBatchNorm2d) for m in backbone.modules()) > 10
    backbone.init_weights()
    images = torch.randn(1, 3, 64, 64)
    expected = _reference_features(reference, backbone.return_nodes, images, False)
    with torch.no_grad():
        for ours, theirs in zip(backbone.train()(images), expected):  # FrozenBN: train == eval
            torch.testing.assert_close(ours, theirs)


def test_frozen_stages_and_norm_eval():
    backbone = TorchvisionBackbone(model_name="regnet_y_400mf", frozen_stages=1, norm_eval=True)
    body = backbone.body
    # Level 1 (stride 8) starts at block2: the stem and block1 are frozen.
    for module in (body.stem, body.trunk_output.block1):
        assert all(not p.requires_grad for p in module.parameters())
    assert all(p.requires_grad for p in body.trunk_output.block2.parameters())
    backbone.train()
    assert not body.stem.training and not body.trunk_output.block1.training
    assert body.trunk_output.block2.training
    assert not any(m.training for m in body.modules() if isinstance(m, nn.BatchNorm2d))
    assert "frozen_stages=1" in backbone.frozen_parts()[0]


def test_weights_of_another_model_name_the_missing_keys(tmp_path):
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), tmp_path / "r18.pth")
    backbone = TorchvisionBackbone(model_name="mobilenet_v3_small",
                                   weights_file=str(tmp_path / "r18.pth"))
    with pytest.raises(CheckpointError, match=r"missing key\(s\), e.g. \['features.0.0.weight"):
        backbone.init_weights()


def test_unknown_and_unsupported_models():
    with pytest.raises(ConfigError, match="did you mean mobilenet_v3_small"):
        TorchvisionBackbone(model_name="mobilenet_v3_smal")
    with pytest.raises(ConfigError, match="no sequential trunk"):
        TorchvisionBackbone(model_name="vit_b_16")
    with pytest.raises(ConfigError, match="out_indices must be levels in 0..3"):
        TorchvisionBackbone(model_name="resnet18", out_indices=(1, 4))


def test_faster_rcnn_with_fpn_in_channels_from_torchvision_trains_and_predicts():
    cfg = tiny_two_stage_cfg("faster")
    cfg["backbone"] = {"type": "TorchvisionBackbone", "model_name": "mobilenet_v3_small",
                       "out_indices": (0, 1, 2, 3)}
    del cfg["neck"]["in_channels"]
    model = build(cfg)
    assert [conv.in_channels for conv in model.neck.lateral_convs] == CHANNELS[
        "mobilenet_v3_small"]
    history = train_steps(model, rectangles_batch(), steps=3)
    assert all(torch.isfinite(torch.tensor(list(h.values()))).all() for h in history)
    model.eval()
    empty = rectangles_batch(with_gt=False)
    empty.images.zero_()
    with torch.no_grad():
        results = model.predict(empty)
    assert len(results) == 2 and all(r.boxes.shape[1] == 4 for r in results)


def test_modules_before_a_boundary_and_an_unknown_name():
    inner = nn.Sequential(nn.Conv2d(1, 1, 1), nn.Conv2d(1, 1, 1))
    model = nn.Sequential(nn.Conv2d(1, 1, 1), inner)
    before = modules_before(model, ("1.1",))
    assert before == [model[0], inner, inner[0]]  # the container of the boundary included
    freeze(before)
    assert [p.requires_grad for p in model.parameters()] == [False, False, False, False, True,
                                                             True]
    with pytest.raises(ConfigError, match="no module of that name"):
        modules_before(model, ("2",))
