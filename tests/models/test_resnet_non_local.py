import torch
from torchvision.models import resnet50

from detbox.models.backbones.resnet import ResNet


def test_non_local_blocks_sit_after_every_other_res4_block():
    backbone = ResNet(depth=50, non_local_stages=(2,), frozen_stages=-1, norm="BN")
    assert sorted(backbone.non_local) == ["2_1", "2_3", "2_5"]  # res4 of R-50 has 6 blocks
    assert all(block.theta.in_channels == 1024 for block in backbone.non_local.values())


def test_non_local_starts_as_identity_and_imagenet_weights_still_load():
    torch.manual_seed(0)
    plain = ResNet(depth=50, frozen_stages=-1, norm="FrozenBN")
    with_nl = ResNet(depth=50, non_local_stages=(2,), frozen_stages=-1, norm="FrozenBN")
    imagenet = resnet50(weights=None).state_dict()
    plain.load_torchvision_weights(imagenet)
    with_nl.load_torchvision_weights(imagenet)
    images = torch.randn(1, 3, 64, 64)
    for a, b in zip(plain(images), with_nl(images)):
        torch.testing.assert_close(a, b)


def test_non_local_blocks_train_and_freeze_with_their_stage():
    backbone = ResNet(depth=18, non_local_stages=(1, 2), frozen_stages=2, norm="BN")
    frozen = backbone.non_local["1_1"]
    trained = backbone.non_local["2_1"]
    assert not any(p.requires_grad for p in frozen.parameters())
    backbone(torch.randn(1, 3, 64, 64))[-1].sum().backward()
    assert trained.out.weight.grad is not None
