"""Generalized attention (Zhu et al., 2019) and ResNet's ``position="after_conv2"`` plug-ins."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import pytest
import torch
import torchvision
from torch import nn

from detbox.config import load_config
from detbox.errors import ConfigError
from detbox.models.backbones import ResNet
from detbox.models.inference_mode import prepare_for_inference
from detbox.models.layers import ContextBlock, GeneralizedAttention
from detbox.models.layers.frozen_bn_conv import PluggedBottleneck
from detbox.registry import MODELS

from .test_inference_mode import _randomize_norms, _relative_error
from .two_stage._tiny import build, rectangles_batch, tiny_two_stage_cfg, train_steps

C4_C5 = (False, False, True, True)
CONFIGS = Path(__file__).resolve().parents[2] / "configs/empirical_attention"


def _attention(**overrides) -> GeneralizedAttention:
    cfg = {"type": "GeneralizedAttention", "in_channels": 16, "num_heads": 4,
           "position_embedding_dim": 8, **overrides}
    return MODELS.build(cfg)


def _perturb(module: nn.Module, seed: int = 0) -> None:
    generator = torch.Generator().manual_seed(seed)
    for param in module.parameters():
        param.data.copy_(torch.randn(param.shape, generator=generator) * 0.3)


@pytest.mark.parametrize("attention_type", ["1000", "0100", "0010", "0001", "1111"])
@pytest.mark.parametrize("kv_stride, q_stride, spatial_range", [(2, 1, -1), (1, 2, 3)])
def test_each_term_gives_finite_outputs_of_the_input_shape(attention_type, kv_stride, q_stride,
                                                           spatial_range):
    torch.manual_seed(0)
    block = _attention(attention_type=attention_type, kv_stride=kv_stride, q_stride=q_stride,
                       spatial_range=spatial_range)
    _perturb(block)
    x = torch.randn(2, 16, 7, 9, requires_grad=True)
    out = block(x)
    assert out.shape == x.shape and torch.isfinite(out).all()
    assert not torch.allclose(out, x)  # a trained block changes its input
    out.square().sum().backward()
    assert torch.isfinite(x.grad).all()


@pytest.mark.parametrize("attention_type", ["0010", "1111"])
def test_new_block_is_the_identity_and_its_output_conv_learns(attention_type):
    block = _attention(attention_type=attention_type)
    x = torch.randn(2, 16, 6, 6)
    out = block(x)
    assert torch.equal(out, x)
    out.square().sum().backward()
    assert block.out_conv.weight.grad.abs().sum() > 0


def test_terms_that_are_off_build_no_parameters():
    names = {n.split(".")[0] for n, _ in _attention(attention_type="0010").named_parameters()}
    assert names == {"key_conv", "key_bias", "value_conv", "out_conv"}
    names = {n.split(".")[0] for n, _ in _attention(attention_type="0001").named_parameters()}
    assert names == {"position_fc_y", "position_fc_x", "position_bias", "value_conv", "out_conv"}


def _reference_key_content(x, block):
    """'0010' with loops: per image and head, one softmax over the (strided) key positions of
    u . k_j / sqrt(d), shared by every query; weighted values, output conv, residual."""
    b, c, h, w = x.shape
    s, heads, d = block.kv_stride, block.num_heads, block.head_dim
    kv = x[:, :, ::s, ::s].reshape(b, c, -1)
    keys = torch.einsum("oc,bcj->boj", block.key_conv.weight.reshape(c, c), kv)
    values = torch.einsum("oc,bcj->boj", block.value_conv.weight.reshape(c, c), kv)
    out = torch.empty_like(x)
    for i in range(b):
        mixed = torch.empty(c, dtype=x.dtype)
        for n in range(heads):
            logits = [sum(block.key_bias[n, t] * keys[i, n * d + t, j] for t in range(d))
                      / math.sqrt(d) for j in range(kv.shape[-1])]
            weights = torch.softmax(torch.stack(logits), dim=0)
            mixed[n * d:(n + 1) * d] = values[i, n * d:(n + 1) * d] @ weights
        term = block.out_conv.weight.reshape(c, c) @ mixed + block.out_conv.bias
        out[i] = x[i] + term.reshape(c, 1, 1)
    return out


def test_key_content_term_golden_against_reference():
    torch.manual_seed(0)
    block = _attention(attention_type="0010", kv_stride=2).double()
    _perturb(block)
    x = torch.randn(2, 16, 5, 6, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(block(x), _reference_key_content(x, block))


def test_local_range_ignores_far_keys():
    torch.manual_seed(0)
    block = _attention(attention_type="1111", kv_stride=1, spatial_range=1)
    _perturb(block)
    x = torch.randn(1, 16, 8, 8)
    far = x.clone()
    far[..., 5:, 5:] += 10.0  # more than one pixel away from the query at (0, 0)
    with torch.no_grad():
        near = block(x)[..., :2, :2]
        torch.testing.assert_close(block(far)[..., :2, :2], near)


@pytest.mark.parametrize("cfg, match", [
    ({"attention_type": "0000"}, "attention_type"),
    ({"attention_type": "012"}, "attention_type"),
    ({"num_heads": 5}, "num_heads"),
    ({"num_heads": 16, "attention_type": "0100"}, "even"),
    ({"spatial_rang": 3}, "spatial_range"),
])
def test_config_errors_are_clear(cfg, match):
    with pytest.raises(ConfigError, match=match):
        _attention(**cfg)


GA = [{"cfg": {"type": "GeneralizedAttention", "spatial_range": -1, "num_heads": 8,
               "attention_type": "0010", "kv_stride": 2},
       "stages": C4_C5, "position": "after_conv2"}]
GCB = [{"cfg": {"type": "ContextBlock", "ratio": 1 / 16}, "stages": (False, True, True, True),
        "position": "after_conv3"}]


def test_after_conv2_plugins_get_the_width_and_keep_the_imagenet_network():
    torch.manual_seed(0)
    plain = ResNet(depth=50, out_indices=(0, 1, 2, 3))
    model = ResNet(depth=50, out_indices=(0, 1, 2, 3), plugins=GA + GCB)
    assert not any(isinstance(b, PluggedBottleneck) for b in model.layer1)
    assert all(not hasattr(b, "after_conv2") for b in model.layer2)
    assert model.layer3[0].after_conv2.in_channels == 256  # the bottleneck width
    assert model.layer4[2].after_conv2.in_channels == 512
    assert isinstance(model.layer4[2].after_conv3, ContextBlock)  # both positions at once
    state = _randomize_norms(torchvision.models.resnet50(weights=None)).state_dict()
    plain.load_torchvision_weights(state)
    model.load_torchvision_weights(state)
    x = torch.randn(1, 3, 96, 96)
    with torch.no_grad():
        for ours, ref in zip(model.eval()(x), plain.eval()(x), strict=True):
            torch.testing.assert_close(ours, ref)
        _perturb(model.layer3[0].after_conv2)
        changed = model(x)
    assert not torch.allclose(changed[2], plain(x)[2])
    torch.testing.assert_close(changed[1], plain(x)[1])


def test_after_conv2_plugin_runs_between_conv2_and_conv3():
    torch.manual_seed(0)
    model = ResNet(depth=50, out_indices=(3,), frozen_stages=-1, norm="GN", norm_eval=False,
                   plugins=GA)
    block = model.layer4[0]
    _perturb(block.after_conv2)
    seen = []
    block.after_conv2.register_forward_hook(lambda m, i, o: seen.append((i[0], o)))
    block.conv3.register_forward_hook(lambda m, i, o: seen.append((i[0], o)))
    model(torch.randn(1, 3, 64, 64))
    (attn_in, attn_out), (conv3_in, _) = seen[:2]
    assert torch.equal(conv3_in, attn_out) and (attn_in >= 0).all()  # after conv2's ReLU


def test_plugged_blocks_run_in_the_inference_fast_path():
    torch.manual_seed(0)
    model = _randomize_norms(ResNet(depth=50, plugins=GA + GCB)).eval()
    for module in model.modules():
        if isinstance(module, (GeneralizedAttention, ContextBlock)):
            _perturb(module)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        expected = model(x)
        fast = prepare_for_inference(copy.deepcopy(model))
        for ours, ref in zip(fast(x), expected, strict=True):
            assert _relative_error(ours, ref) < 1e-4


def test_same_position_twice_is_an_error():
    with pytest.raises(ConfigError, match="already"):
        ResNet(depth=50, plugins=GA + GA)


def test_tiny_attention_faster_rcnn_trains():
    cfg = tiny_two_stage_cfg("faster")
    cfg["backbone"] = {"type": "ResNeXt", "depth": 50, "groups": 8, "base_width": 1,
                       "out_indices": (0, 1, 2, 3), "frozen_stages": -1,
                       "plugins": copy.deepcopy(GA)}
    cfg["backbone"]["plugins"][0]["cfg"]["attention_type"] = "1111"
    cfg["neck"]["in_channels"] = [256, 512, 1024, 2048]
    model = build(cfg)
    before = model.backbone.layer3[0].after_conv2.out_conv.weight.clone()
    history = train_steps(model, rectangles_batch(), 3)
    assert all(math.isfinite(v) for step in history for v in step.values())
    assert not torch.equal(model.backbone.layer3[0].after_conv2.out_conv.weight, before)


@pytest.mark.parametrize("name, attention_type, dcn", [
    ("faster_rcnn_r50_fpn_attention_0010_1x_coco", "0010", False),
    ("faster_rcnn_r50_fpn_attention_1111_1x_coco", "1111", False),
    ("faster_rcnn_r50_fpn_attention_0010_dcn_1x_coco", "0010", True),
])
def test_recipes_plug_attention_into_c4_c5(name, attention_type, dcn):
    cfg = load_config(CONFIGS / f"{name}.py")
    backbone = cfg["model"]["backbone"]
    (plugin,) = backbone["plugins"]
    assert plugin["position"] == "after_conv2" and tuple(plugin["stages"]) == C4_C5
    assert plugin["cfg"]["attention_type"] == attention_type
    assert ("dcn" in backbone) == dcn
    model = MODELS.build({**backbone, "type": "ResNet"})
    assert isinstance(model.layer3[0].after_conv2, GeneralizedAttention)
    assert model.layer3[0].after_conv2.attention_type == attention_type
