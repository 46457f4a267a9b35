"""The non-local block, and res5 of the C4 head initialized from a torchvision ResNet."""

import pytest
import torch
import torchvision

from detbox.models.layers import NonLocal2d
from detbox.registry import MODELS

from ._tiny import build, tiny_c4_cfg


@pytest.mark.parametrize("mode", ["embedded_gaussian", "dot_product"])
@pytest.mark.parametrize("norm", [None, "GN"])
def test_non_local_starts_as_identity_and_learns(mode, norm):
    torch.manual_seed(0)
    block = NonLocal2d(in_channels=64, mode=mode, norm=norm)
    x = torch.randn(2, 64, 5, 7, requires_grad=True)
    y = block(x)
    assert y.shape == x.shape and torch.allclose(y, x)
    y.square().sum().backward()
    out_weight = block.out[-1].weight if norm else block.out.weight
    assert out_weight.grad.abs().sum() > 0


def test_non_local_is_registered_and_checks_mode():
    block = MODELS.build({"type": "NonLocal2d", "in_channels": 8, "reduction": 4})
    assert block.inter_channels == 2
    with pytest.raises(ValueError, match="mode"):
        NonLocal2d(in_channels=8, mode="gaussian")


def test_res5_is_initialized_from_the_backbone_checkpoint(tmp_path):
    torch.manual_seed(0)
    state = torchvision.models.resnet18().state_dict()
    path = tmp_path / "r18.pth"
    torch.save(state, path)
    cfg = tiny_c4_cfg()
    cfg["backbone"]["norm"] = cfg["roi_head"]["norm"] = "FrozenBN"
    cfg["init_cfg"] = {"backbone_checkpoint": str(path)}
    model = build(cfg)
    model.init_weights()  # construction reads no checkpoint; training calls this first
    res5 = model.roi_head.res5.state_dict()
    assert torch.equal(res5["0.conv1.weight"], state["layer4.0.conv1.weight"])
    assert torch.equal(res5["1.bn2.running_var"], state["layer4.1.bn2.running_var"])
    assert torch.equal(model.backbone.layer3[0].conv1.weight, state["layer3.0.conv1.weight"])
