"""HRNetV2 backbone: shapes, the published size, the official checkpoint layout, freezing,
gradients, norms and the inference fast path."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torchvision.models.resnet import Bottleneck
from torchvision.ops.misc import FrozenBatchNorm2d

from detbox.errors import CheckpointError, ConfigError
from detbox.models.backbones import HRNet
from detbox.models.detectors.base import frozen_without_weights
from detbox.models.inference_mode import fold_batch_norms, prepare_for_inference
from detbox.registry import MODELS

from ._hrnet_layout import official_layout

# Small enough for quick CPU tests: one module per stage, one block per branch.
SLIM = {"type": "HRNet", "width": 8, "num_modules": (1, 1, 1), "num_blocks": (1, 1, 1, 1)}


def _count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def classification_head_params(width: int) -> int:
    """Parameters of the ImageNet head on top of HRNetV2 in the official classification model:
    a Bottleneck per branch (32, 64, 128, 256 planes), stride-2 3x3 convs merging them, a 1x1
    conv to 2048 channels and the 1000-way classifier."""
    planes = [32, 64, 128, 256]
    total = 0
    for i, p in enumerate(planes):
        c = width * 2**i
        shortcut = nn.Sequential(nn.Conv2d(c, 4 * p, 1, bias=False), nn.BatchNorm2d(4 * p))
        total += _count(Bottleneck(c, p, downsample=shortcut))
    for a, b in zip(planes, planes[1:]):
        total += _count(nn.Conv2d(4 * a, 4 * b, 3)) + _count(nn.BatchNorm2d(4 * b))
    total += _count(nn.Conv2d(1024, 2048, 1)) + _count(nn.BatchNorm2d(2048))
    return total + _count(nn.Linear(2048, 1000))


@pytest.mark.parametrize("width", [18, 32, 40])
def test_outputs_channels_and_strides(width):
    backbone = MODELS.build({"type": "HRNet", "width": width}).eval()
    assert isinstance(backbone, HRNet)
    assert backbone.out_channels == [width, 2 * width, 4 * width, 8 * width]
    assert backbone.out_strides == [4, 8, 16, 32]
    with torch.no_grad():
        outs = backbone(torch.zeros(1, 3, 64, 96))
    assert [tuple(o.shape) for o in outs] == [
        (1, width * 2**i, 64 // s, 96 // s) for i, s in enumerate((4, 8, 16, 32))]


def test_odd_sizes_and_out_indices():
    backbone = MODELS.build({**SLIM, "out_indices": (1, 3)}).eval()
    assert backbone.out_channels == [16, 64] and backbone.out_strides == [8, 32]
    with torch.no_grad():
        outs = backbone(torch.randn(2, 3, 67, 45))
    assert [tuple(o.shape) for o in outs] == [(2, 16, 9, 6), (2, 64, 3, 2)]  # ceil halvings


@pytest.mark.parametrize("width, published", [(18, 21.3), (32, 41.2), (40, 57.6)])
def test_parameter_count_matches_the_published_classification_models(width, published):
    # The official HRNet-Image-Classification README (and the TPAMI paper's ImageNet table)
    # gives HRNet-W18-C 21.3M, W32-C 41.2M, W40-C 57.6M parameters: this backbone plus the
    # classification head counted above (W32: 29.31M + 11.93M).
    backbone = MODELS.build({"type": "HRNet", "width": width})
    total = _count(backbone) + classification_head_params(width)
    assert round(total / 1e6, 1) == published


def test_official_checkpoint_loads_key_for_key(tmp_path):
    backbone = MODELS.build({"type": "HRNet", "width": 18})
    layout = official_layout(18)
    assert {k: tuple(v.shape) for k, v in backbone.state_dict().items()} == layout
    generator = torch.Generator().manual_seed(0)
    weights = {k: torch.randn(shape, generator=generator) if shape else torch.tensor(7)
               for k, shape in layout.items()}
    head = {"incre_modules.0.0.conv1.weight": torch.zeros(32, 18, 1, 1),
            "downsamp_modules.0.0.weight": torch.zeros(256, 128, 3, 3),
            "final_layer.0.weight": torch.zeros(2048, 1024, 1, 1),
            "classifier.weight": torch.zeros(1000, 2048), "classifier.bias": torch.zeros(1000)}
    path = tmp_path / "hrnetv2_w18.pth"
    torch.save({"state_dict": {**weights, **head}}, path)
    backbone.load_torchvision_weights(str(path))
    loaded = backbone.state_dict()
    for key, value in weights.items():
        assert torch.equal(loaded[key], value.to(loaded[key].dtype)), key


def test_checkpoint_mistakes_are_named(tmp_path):
    backbone = MODELS.build({"type": "HRNet", "width": 18})
    weights = {k: torch.zeros(shape) for k, shape in official_layout(18).items()}
    with pytest.raises(ConfigError, match="torchvision publishes no HRNet weights"):
        backbone.load_torchvision_weights("torchvision://resnet50")
    with pytest.raises(CheckpointError, match=r"lacks 1 key.*stage4\.2\.fuse_layers\.3\.0\.2\.0"):
        backbone.load_torchvision_weights(
            {k: v for k, v in weights.items() if k != "stage4.2.fuse_layers.3.0.2.0.weight"})
    with pytest.raises(CheckpointError, match="unexpected key.*stage5"):
        backbone.load_torchvision_weights({**weights, "stage5.0.weight": torch.zeros(1)})
    wide = {k: torch.zeros(shape) for k, shape in official_layout(32).items()}
    with pytest.raises(CheckpointError, match="HRNetV2-W18 checkpoint does not fit"):
        backbone.load_torchvision_weights(wide)


def test_frozen_stages_stay_frozen_and_bn_statistics_fixed():
    backbone = MODELS.build({**SLIM, "frozen_stages": 2}).train()
    frozen = ("conv1", "bn1", "conv2", "bn2", "layer1", "transition1", "stage2", "transition2")
    for name, param in backbone.named_parameters():
        assert param.requires_grad == (not name.startswith(frozen)), name
    assert not backbone.stage2.training and backbone.stage3.training
    assert all(not m.training for m in backbone.modules() if isinstance(m, nn.BatchNorm2d))
    before = backbone.layer1[0].bn1.running_mean.clone()
    backbone(torch.randn(2, 3, 64, 64))
    assert torch.equal(backbone.layer1[0].bn1.running_mean, before)
    assert backbone.frozen_parts() == ["the stem and stages 1, 2 (frozen_stages=2)",
                                       "the BN statistics (norm_eval=True)"]


def test_training_with_fixed_bn_statistics_and_no_weights_names_the_official_file():
    message = frozen_without_weights(MODELS.build({**SLIM, "width": 32}))
    assert "keeps the BN statistics (norm_eval=True) fixed" in message
    assert ("backbone_checkpoint='https://download.openmmlab.com/pretrain/third_party/"
            "hrnetv2_w32-dc9eeb4f.pth'") in message
    assert "torchvision://<name>" in frozen_without_weights(MODELS.build(SLIM))  # no file: W8
    assert frozen_without_weights(MODELS.build({**SLIM, "norm_eval": False})) is None


def test_gradients_reach_every_parameter():
    torch.manual_seed(0)
    backbone = MODELS.build({**SLIM, "norm_eval": False}).train()
    outs = backbone(torch.randn(2, 3, 64, 64))
    sum((o**2).mean() for o in outs).backward()
    for name, param in backbone.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name


@pytest.mark.parametrize("norm", ["FrozenBN", "SyncBN", "GN"])
def test_other_norms(norm):
    backbone = MODELS.build({**SLIM, "width": 32, "norm": norm})
    expected = {"FrozenBN": FrozenBatchNorm2d, "SyncBN": nn.SyncBatchNorm, "GN": nn.GroupNorm}[norm]
    assert isinstance(backbone.bn1, expected)
    assert isinstance(backbone.stage4[0].fuse_layers[0][3][1], expected)
    if norm != "SyncBN":  # SyncBN needs a process group in training mode; eval runs anywhere
        with torch.no_grad():
            assert backbone.eval()(torch.randn(1, 3, 64, 64))[0].shape == (1, 32, 16, 16)


def test_group_norm_on_widths_not_divisible_by_32_fails_clearly():
    with pytest.raises(ConfigError, match="GroupNorm needs channels divisible by num_groups=32"):
        MODELS.build({**SLIM, "width": 18, "norm": "GN"})


def test_zero_init_residual_zeroes_the_last_norm_of_each_block():
    backbone = MODELS.build({**SLIM, "zero_init_residual": True})
    assert not backbone.layer1[0].bn3.weight.any()
    assert not backbone.stage3[0].branches[2][0].bn2.weight.any()
    assert backbone.stage3[0].branches[2][0].bn1.weight.all()


def test_inference_mode_gives_the_same_outputs():
    torch.manual_seed(0)
    model = nn.Sequential(MODELS.build(SLIM), MODELS.build(
        {"type": "HRFPN", "in_channels": [8, 16, 32, 64], "out_channels": 16}))
    generator = torch.Generator().manual_seed(1)
    for module in model.modules():  # non-trivial BN statistics, as after training
        if isinstance(module, nn.BatchNorm2d):
            c = module.num_features
            module.running_mean.copy_(torch.randn(c, generator=generator) * 0.1)
            module.running_var.copy_(torch.rand(c, generator=generator) + 0.5)
            module.weight.data.copy_(torch.rand(c, generator=generator) + 0.5)
    model.eval()
    images = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        expected = model(images)
        num_bn = sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
        folded = prepare_for_inference(model)
        assert fold_batch_norms(folded) == 0  # all of them were folded already
        assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules()) and num_bn > 40
        actual = folded(images)
    for a, b in zip(expected, actual):
        assert float((a - b).abs().max() / a.abs().max()) < 1e-4
