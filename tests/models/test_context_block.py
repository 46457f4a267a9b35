"""GCNet's ContextBlock and ResNet's ``plugins`` (``position="after_conv3"``)."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
import torchvision
from torch import nn

from detbox.apis.build import fill_num_classes
from detbox.config import load_config
from detbox.errors import ConfigError
from detbox.models.backbones import ResNet, ResNeXt
from detbox.models.inference_mode import prepare_for_inference
from detbox.models.layers import ContextBlock
from detbox.models.layers.frozen_bn_conv import PluggedBottleneck
from detbox.registry import MODELS
from detbox.structures import ImageBatch, Instances

from .test_inference_mode import _randomize_norms, _relative_error
from .two_stage._tiny import build, rectangles_batch, tiny_two_stage_cfg, train_steps

C3_C5 = (False, True, True, True)
GCB = [{"cfg": {"type": "ContextBlock", "ratio": 1 / 16}, "stages": C3_C5,
        "position": "after_conv3"}]
RECIPE = (Path(__file__).resolve().parents[2]
          / "configs/gcnet/mask_rcnn_r50_fpn_r16_gcb_c3-c5_1x_coco.py")


def _perturb(module: nn.Module, seed: int = 0) -> None:
    """Non-zero weights everywhere, as after some training."""
    generator = torch.Generator().manual_seed(seed)
    for param in module.parameters():
        param.data.copy_(torch.randn(param.shape, generator=generator) * 0.1)


def _reference_context_block(x, block):
    """Per image and channel loops over the positions, then the transform, then the sum."""
    b, c, h, w = x.shape
    out = torch.empty_like(x)
    for i in range(b):
        logits = (block.conv_mask.weight.reshape(1, c) @ x[i].reshape(c, h * w)).reshape(-1)
        logits = logits + block.conv_mask.bias
        weights = logits.exp() / logits.exp().sum()
        context = torch.stack([(x[i, k].reshape(-1) * weights).sum() for k in range(c)])
        conv1, norm, _, conv2 = block.channel_add
        hidden = conv1.weight.reshape(-1, c) @ context + conv1.bias
        hidden = (hidden - hidden.mean()) / (hidden.var(unbiased=False) + norm.eps).sqrt()
        hidden = hidden * norm.weight.reshape(-1) + norm.bias.reshape(-1)
        term = conv2.weight.reshape(c, -1) @ hidden.clamp(min=0) + conv2.bias
        out[i] = x[i] + term.reshape(c, 1, 1)
    return out


def test_context_block_golden_against_reference():
    torch.manual_seed(0)
    block = MODELS.build({"type": "ContextBlock", "in_channels": 32, "ratio": 1 / 4})
    _perturb(block)
    x = torch.randn(2, 32, 5, 7)
    with torch.no_grad():
        expected = _reference_context_block(x.double(), copy.deepcopy(block).double())
        torch.testing.assert_close(block(x).double(), expected, rtol=1e-5, atol=1e-5)


def test_new_block_is_identity_and_gets_gradients():
    block = ContextBlock(in_channels=64, ratio=1 / 16)
    assert block.channel_add[0].out_channels == 4
    x = torch.randn(2, 64, 6, 6, requires_grad=True)
    out = block(x)
    assert out.shape == x.shape and torch.equal(out, x)
    out.square().sum().backward()
    assert block.channel_add[-1].weight.grad.abs().sum() > 0  # the zero conv learns
    assert x.grad is not None


def test_ratio_leaving_no_channels_is_an_error():
    with pytest.raises(ConfigError, match="ratio"):
        ContextBlock(in_channels=8, ratio=1 / 16)


def test_plugins_go_into_chosen_stages_and_pretrained_net_is_unchanged():
    torch.manual_seed(0)
    tv = torchvision.models.resnet50(weights=None)
    plain = ResNet(depth=50, out_indices=(0, 1, 2, 3))
    model = ResNet(depth=50, out_indices=(0, 1, 2, 3), plugins=GCB)
    assert not any(isinstance(b, PluggedBottleneck) for b in model.layer1)
    for stage in (model.layer2, model.layer3, model.layer4):
        assert all(isinstance(b.after_conv3, ContextBlock) for b in stage)
    assert model.layer4[0].after_conv3.in_channels == 2048
    state = _randomize_norms(tv).state_dict()
    plain.load_torchvision_weights(state)
    model.load_torchvision_weights(state)  # the plug-in keys are new, the rest load
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        for ours, ref in zip(model.eval()(x), plain.eval()(x), strict=True):
            torch.testing.assert_close(ours, ref)
        _perturb(model.layer3[1].after_conv3)
        changed = model(x)
    assert not torch.allclose(changed[2], plain(x)[2])
    torch.testing.assert_close(changed[1], plain(x)[1])  # c3 comes before the change


def test_plugged_block_runs_in_the_inference_fast_path():
    torch.manual_seed(0)
    model = _randomize_norms(ResNeXt(depth=50, groups=8, base_width=4, plugins=GCB)).eval()
    for module in model.modules():
        if isinstance(module, ContextBlock):
            _perturb(module)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        expected = model(x)
        fast = prepare_for_inference(copy.deepcopy(model))
        for ours, ref in zip(fast(x), expected, strict=True):
            assert _relative_error(ours, ref) < 1e-4


@pytest.mark.parametrize("plugins, match", [
    ([{"cfg": {"type": "ContextBlock"}, "position": "after_conv1"}], "position"),
    ([{"cfg": {"type": "ContextBlock"}, "stage": C3_C5}], "keys"),
    ([{"cfg": {"type": "ContextBlock", "ration": 0.25}}], "ratio"),
    (GCB + GCB, "already"),
])
def test_plugin_config_errors_are_clear(plugins, match):
    with pytest.raises(ConfigError, match=match):
        ResNet(depth=50, plugins=plugins)


def test_tiny_gcb_faster_rcnn_trains_and_predicts():
    cfg = tiny_two_stage_cfg("faster")
    cfg["backbone"] = {"type": "ResNeXt", "depth": 50, "groups": 8, "base_width": 1,
                       "out_indices": (0, 1, 2, 3), "frozen_stages": -1, "plugins": GCB}
    cfg["neck"]["in_channels"] = [256, 512, 1024, 2048]
    model = build(cfg)
    last = model.backbone.layer3[0].after_conv3.channel_add[-1].weight
    batch = rectangles_batch()
    history = train_steps(model, batch, steps=4, lr=0.005)
    totals = [sum(h.values()) for h in history]
    assert all(torch.isfinite(torch.tensor(totals)))
    assert min(totals[-2:]) < totals[0], history
    assert last.abs().sum() > 0  # the zero-initialised conv moved
    model.eval()
    empty = ImageBatch(images=torch.zeros(1, 3, 64, 64), samples=[rectangles_batch().samples[0]])
    empty.samples[0].gt = Instances.empty()
    with torch.no_grad():
        results = model.predict(batch) + model.predict(empty)
    assert len(results) == 3


def test_gcnet_coco_recipe_builds():
    cfg = load_config(RECIPE)
    fill_num_classes(cfg, [f"class{i}" for i in range(80)], source="test")
    model = MODELS.build(cfg["model"])
    blocks = [m for m in model.backbone.modules() if isinstance(m, ContextBlock)]
    assert len(blocks) == 4 + 6 + 3 and blocks[0].channel_add[0].out_channels == 512 // 16
