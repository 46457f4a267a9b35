"""ResNeXt: ResNet on torchvision's grouped bottlenecks, loading torchvision's state dicts."""

from __future__ import annotations

import copy

import pytest
import torch
import torchvision
from torch import nn
from torchvision.ops.misc import FrozenBatchNorm2d

from detbox.errors import CheckpointError, ConfigError
from detbox.models.backbones import ResNeXt
from detbox.models.fused_conv import FusedBottleneck
from detbox.models.inference_mode import prepare_for_inference
from detbox.models.pretrained import checkpoint_url
from detbox.registry import MODELS

from .test_inference_mode import _randomize_norms


def random_torchvision_resnext(builder, seed: int = 0) -> nn.Module:
    """A torchvision ResNeXt with random weights and BN statistics, in eval mode."""
    torch.manual_seed(seed)
    model = builder(weights=None)
    return _randomize_norms(model, seed).eval()


@pytest.mark.parametrize("depth, groups, base_width, width", [
    (50, 32, 4, 128), (101, 32, 4, 128), (101, 64, 4, 256), (101, 32, 8, 256), (152, 32, 4, 128),
])
def test_variants_build_with_grouped_convs_and_resnet_channels(depth, groups, base_width, width):
    model = MODELS.build({"type": "ResNeXt", "depth": depth, "groups": groups,
                          "base_width": base_width, "out_indices": (0, 1, 2, 3)})
    conv2 = model.layer1[0].conv2
    assert (conv2.groups, conv2.in_channels, conv2.out_channels) == (groups, width, width)
    assert model.layer4[0].conv2.out_channels == width * 8
    blocks = {50: [3, 4, 6, 3], 101: [3, 4, 23, 3], 152: [3, 8, 36, 3]}[depth]
    assert [len(getattr(model, f"layer{i}")) for i in range(1, 5)] == blocks
    assert model.out_channels == [256, 512, 1024, 2048]
    assert model.arch == f"resnext{depth}_{groups}x{base_width}d"
    with torch.no_grad():
        outs = model.eval()(torch.zeros(1, 3, 64, 96))
    assert [tuple(o.shape) for o in outs] == [(1, 256, 16, 24), (1, 512, 8, 12),
                                              (1, 1024, 4, 6), (1, 2048, 2, 3)]


def test_loads_a_torchvision_resnext_file_and_matches_its_c5(tmp_path):
    reference = random_torchvision_resnext(torchvision.models.resnext50_32x4d)
    torch.save(reference.state_dict(), tmp_path / "x50.pth")
    model = ResNeXt(depth=50, groups=32, base_width=4, out_indices=(3,))
    model.load_torchvision_weights(tmp_path / "x50.pth")
    own = model.state_dict()
    for key, value in reference.state_dict().items():
        if not key.startswith("fc.") and not key.endswith("num_batches_tracked"):
            assert torch.equal(own[key], value), key
    images = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        stem = reference.maxpool(reference.relu(reference.bn1(reference.conv1(images))))
        expected = reference.layer4(reference.layer3(reference.layer2(reference.layer1(stem))))
        torch.testing.assert_close(model.eval()(images)[0], expected, rtol=1e-4, atol=1e-4)


def test_torchvision_names_and_mismatches():
    assert "resnext101_64x4d" in checkpoint_url("torchvision://resnext101_64x4d")
    assert "resnext101_32x8d" in checkpoint_url("torchvision://resnext101_32x8d")
    x101 = ResNeXt(depth=101, groups=32, base_width=4)
    with pytest.raises(ConfigError, match="file path holding ResNeXt-101 32x4d weights"):
        x101.load_torchvision_weights("torchvision://resnext101_32x8d")
    x50 = ResNeXt(depth=50, groups=32, base_width=4)
    with pytest.raises(ConfigError, match="use 'torchvision://resnext50_32x4d'"):
        x50.load_torchvision_weights("torchvision://resnet50")
    resnet50_state = torchvision.models.resnet50(weights=None).state_dict()
    with pytest.raises(CheckpointError, match="ResNeXt-50 32x4d checkpoint does not fit"):
        x50.load_torchvision_weights(resnet50_state)  # same keys, ungrouped shapes
    with pytest.raises(ConfigError, match="depth"):
        MODELS.build({"type": "ResNeXt", "depth": 18})
    with pytest.raises(ConfigError, match="Did you mean 'base_width'"):
        MODELS.build({"type": "ResNeXt", "depth": 50, "base_widht": 4})


def test_frozen_stages_stay_frozen_through_training():
    torch.manual_seed(0)
    model = ResNeXt(depth=50, groups=8, base_width=4, frozen_stages=1, norm="BN",
                    norm_eval=False, out_indices=(3,))
    assert all(not p.requires_grad for m in (model.conv1, model.layer1) for p in m.parameters())
    assert all(p.requires_grad for p in model.layer2.parameters())
    model.train()
    assert not model.layer1[0].bn2.training and model.layer2[0].bn2.training
    before = {k: v.clone() for k, v in model.layer1.state_dict().items()}
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    model(torch.randn(2, 3, 64, 64))[0].mean().backward()
    optimizer.step()
    after = model.layer1.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_folded_frozen_bn_training_path_matches_the_plain_blocks():
    """The backbone's training forward folds each frozen BN into its (grouped) conv; the
    result and the gradients equal torchvision's blocks run as they are."""
    torch.manual_seed(0)
    model = _randomize_norms(ResNeXt(depth=50, groups=8, base_width=4, frozen_stages=-1,
                                     out_indices=(1, 2)))
    assert isinstance(model.layer2[0].bn2, FrozenBatchNorm2d)
    images = torch.randn(1, 3, 64, 64)
    outs = model.train()(images)
    grads = torch.autograd.grad(sum(o.square().mean() for o in outs),
                                [model.layer2[0].conv2.weight, model.layer3[1].conv2.weight])
    stem = model.maxpool(model.relu(model.bn1(model.conv1(images))))
    c3 = model.layer2(model.layer1(stem))
    c4 = model.layer3(c3)
    ref_grads = torch.autograd.grad(c3.square().mean() + c4.square().mean(),
                                    [model.layer2[0].conv2.weight, model.layer3[1].conv2.weight])
    torch.testing.assert_close(outs[0], c3, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(outs[1], c4, rtol=1e-4, atol=1e-5)
    for grad, ref in zip(grads, ref_grads):
        torch.testing.assert_close(grad, ref, rtol=1e-3, atol=1e-6)


def test_inference_mode_folds_and_fuses_grouped_blocks():
    torch.manual_seed(0)
    model = _randomize_norms(ResNeXt(depth=50, groups=8, base_width=4,
                                     out_indices=(0, 1, 2, 3))).eval()
    images = torch.randn(1, 3, 96, 64)
    with torch.no_grad():
        expected = model(images)
        fast = prepare_for_inference(copy.deepcopy(model))
        got = fast(images)
    assert not any(isinstance(m, FrozenBatchNorm2d) for m in fast.modules())
    assert isinstance(fast.layer3[2], FusedBottleneck) and fast.layer3[2].conv2.groups == 8
    for a, b in zip(expected, got):
        assert float((a - b).abs().max() / a.abs().max()) < 1e-4


def test_init_cfg_loads_cached_torchvision_resnext_weights(tmp_path, monkeypatch):
    """``init_cfg=dict(backbone_checkpoint="torchvision://resnext50_32x4d")`` reads torch's hub
    cache (no network here: a random state dict sits at the cached file name)."""
    from detbox.models.detectors.base import frozen_without_weights
    from detbox.models.pretrained import cache_path
    from tests.models._helpers import tiny_retinanet_cfg

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(torch.hub, "download_url_to_file",
                        lambda *a, **k: pytest.fail(f"unexpected download: {a}"))
    state = random_torchvision_resnext(torchvision.models.resnext50_32x4d, seed=4).state_dict()
    cached = cache_path(checkpoint_url("torchvision://resnext50_32x4d"))
    cached.parent.mkdir(parents=True)
    torch.save(state, cached)
    cfg = tiny_retinanet_cfg()
    cfg["backbone"] = {"type": "ResNeXt", "depth": 50, "out_indices": (1, 2, 3)}
    cfg["neck"]["in_channels"] = [512, 1024, 2048]
    cfg["init_cfg"] = {"backbone_checkpoint": "torchvision://resnext50_32x4d"}
    model = MODELS.build(cfg)
    assert "resnext50_32x4d" in frozen_without_weights(model.backbone)  # the hint names it
    assert "torchvision://resnext50_32x4d" in model.init_weights()
    assert torch.equal(model.backbone.layer4[1].conv2.weight, state["layer4.1.conv2.weight"])
