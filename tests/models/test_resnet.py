import pytest
import torch
import torchvision
from torch import nn

from detbox.errors import CheckpointError, ConfigError
from detbox.models.backbones import ResNet, make_resnet_stage
from detbox.models.layers import FrozenBatchNorm2d, build_norm
from detbox.registry import MODELS


def randomize_bn_stats(model: nn.Module, seed: int = 0) -> None:
    generator = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.copy_(torch.randn(module.num_features, generator=generator) * 0.1)
            module.running_var.copy_(torch.rand(module.num_features, generator=generator) + 0.5)
            module.weight.data.copy_(torch.rand(module.num_features, generator=generator) + 0.5)


def test_output_shapes_and_channels():
    model = ResNet(depth=18, out_indices=(0, 1, 2, 3))
    outs = model(torch.zeros(1, 3, 64, 96))
    assert model.out_channels == [64, 128, 256, 512]
    assert model.out_strides == [4, 8, 16, 32]
    assert [tuple(o.shape) for o in outs] == [(1, 64, 16, 24), (1, 128, 8, 12), (1, 256, 4, 6),
                                              (1, 512, 2, 3)]
    assert ResNet(depth=50).out_channels == [512, 1024, 2048]


def test_frozen_stages_stay_frozen_through_training():
    torch.manual_seed(0)
    model = ResNet(depth=18, frozen_stages=1, norm="BN", norm_eval=False, out_indices=(3,))
    frozen = [model.conv1, model.bn1, model.layer1]
    assert all(not p.requires_grad for m in frozen for p in m.parameters())
    assert all(p.requires_grad for p in model.layer2.parameters())
    model.train()
    assert not model.layer1[0].bn1.training and model.layer2[0].bn1.training
    before = {k: v.clone() for k, v in model.layer1.state_dict().items()}
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    model(torch.randn(2, 3, 64, 64))[0].mean().backward()
    optimizer.step()
    after = model.layer1.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # weights and BN statistics


def test_norm_eval_keeps_bn_statistics():
    images = torch.randn(2, 3, 64, 64)
    kept = ResNet(depth=18, frozen_stages=-1, norm="BN", norm_eval=True).train()
    mean_before = kept.layer3[0].bn1.running_mean.clone()
    kept(images)
    assert torch.equal(kept.layer3[0].bn1.running_mean, mean_before)
    assert not kept.layer3[0].bn1.training
    updated = ResNet(depth=18, frozen_stages=-1, norm="BN", norm_eval=False).train()
    mean_before = updated.layer3[0].bn1.running_mean.clone()
    updated(images)
    assert not torch.equal(updated.layer3[0].bn1.running_mean, mean_before)


def test_loads_torchvision_weights_and_matches_its_features(tmp_path):
    torch.manual_seed(0)
    reference = torchvision.models.resnet18(weights=None)
    randomize_bn_stats(reference)
    reference.eval()
    torch.save(reference.state_dict(), tmp_path / "r18.pth")
    model = ResNet(depth=18, out_indices=(3,), norm="FrozenBN")
    model.load_torchvision_weights(tmp_path / "r18.pth")
    images = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        stem = reference.maxpool(reference.relu(reference.bn1(reference.conv1(images))))
        expected = reference.layer4(reference.layer3(reference.layer2(reference.layer1(stem))))
        torch.testing.assert_close(model.eval()(images)[0], expected, rtol=1e-4, atol=1e-4)
    c4 = ResNet(depth=18, num_stages=3, out_indices=(2,))
    c4.load_torchvision_weights({"state_dict": reference.state_dict()})  # layer4 is skipped
    with pytest.raises(CheckpointError, match="lacks"):
        ResNet(depth=34).load_torchvision_weights(reference.state_dict())
    with pytest.raises(CheckpointError, match="not found"):
        model.load_torchvision_weights(tmp_path / "missing.pth")


def test_norm_choices_and_config_errors():
    gn = ResNet(depth=18, norm="GN", frozen_stages=-1)
    assert isinstance(gn.bn1, nn.GroupNorm) and gn.bn1.num_groups == 32
    assert isinstance(ResNet(depth=18).bn1, FrozenBatchNorm2d)
    assert isinstance(build_norm("SyncBN", 64), nn.SyncBatchNorm)
    with pytest.raises(ConfigError, match="depth"):
        ResNet(depth=20)
    with pytest.raises(ConfigError, match="unknown norm"):
        ResNet(depth=18, norm="LN")
    with pytest.raises(ConfigError, match="out_indices"):
        ResNet(depth=18, out_indices=(4,))
    with pytest.raises(ConfigError, match="unknown key 'frozen_stage'"):
        MODELS.build({"type": "ResNet", "depth": 18, "frozen_stage": 1})


def test_make_resnet_stage():
    res5 = make_resnet_stage(depth=18, stage=3, norm="FrozenBN")
    assert res5(torch.zeros(1, 256, 8, 8)).shape == (1, 512, 4, 4)
