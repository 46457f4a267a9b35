"""Weight Standardization: ``ConvWS2d`` and ResNet's ``conv_cfg=dict(type="ConvWS")``."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn
from torchvision.ops.misc import FrozenBatchNorm2d

from detbox.apis.build import fill_num_classes
from detbox.config import load_config
from detbox.errors import ConfigError
from detbox.models.backbones import ResNet, ResNeXt
from detbox.models.inference_mode import fold_batch_norms, prepare_for_inference
from detbox.models.layers import ConvWS2d, conv_like
from detbox.models.layers.frozen_bn_conv import conv_frozen_bn
from detbox.registry import MODELS
from detbox.structures import ImageBatch, Instances

from .test_inference_mode import _randomize_norms, _relative_error
from .two_stage._tiny import build, rectangles_batch, tiny_two_stage_cfg, train_steps

WS = {"type": "ConvWS"}
RECIPE = "faster_rcnn_r50_fpn_gn_ws-all_1x_coco.py"


def _reference_ws_conv(x, weight, bias, stride, padding, eps=1e-5):
    """Standardize filter by filter with explicit sums, then convolve."""
    filters = []
    for w in weight:
        n = w.numel()
        mean = w.sum() / n
        std = (((w - mean) ** 2).sum() / (n - 1)).sqrt()
        filters.append((w - mean) / (std + eps))
    return F.conv2d(x, torch.stack(filters), bias, stride=stride, padding=padding)


@pytest.mark.parametrize("stride, padding, bias", [(1, 1, True), (2, 0, False)])
def test_ws_conv_golden_against_reference(stride, padding, bias):
    torch.manual_seed(0)
    conv = MODELS.build({"type": "ConvWS", "in_channels": 3, "out_channels": 5,
                         "kernel_size": 3, "stride": stride, "padding": padding, "bias": bias})
    conv.weight.data.mul_(7).add_(0.3)  # far from standardized already
    x = torch.randn(2, 3, 9, 11)
    expected = _reference_ws_conv(x.double(), conv.weight.double(),
                                  None if conv.bias is None else conv.bias.double(),
                                  stride, padding)
    torch.testing.assert_close(conv(x).double(), expected, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(conv(x), conv._conv_forward(x, conv.weight, conv.bias))


def test_standardized_filters_have_zero_mean_and_unit_std():
    torch.manual_seed(0)
    conv = ConvWS2d(in_channels=4, out_channels=6, kernel_size=3, padding=1)
    conv.weight.data.mul_(3).add_(1.0)
    flat = conv.standardized_weight().reshape(6, -1)
    torch.testing.assert_close(flat.mean(dim=1), torch.zeros(6), atol=1e-6, rtol=0)
    torch.testing.assert_close(flat.std(dim=1), torch.ones(6), atol=1e-4, rtol=0)


def test_ws_conv_trains_its_raw_weight():
    conv = ConvWS2d(in_channels=2, out_channels=3, kernel_size=3, padding=1)
    conv(torch.randn(1, 2, 5, 5)).square().sum().backward()
    assert conv.weight.grad is not None and conv.weight.grad.abs().sum() > 0


def test_gn_ws_resnet50_builds_and_loads_torchvision_keys():
    tv = torchvision.models.resnet50(weights=None)
    model = ResNet(depth=50, norm="GN", conv_cfg=WS, frozen_stages=-1,
                   out_indices=(0, 1, 2, 3))
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 53 and all(type(m) is ConvWS2d for m in convs)
    assert type(model.layer2[0].downsample[0]) is ConvWS2d
    model.load_torchvision_weights(tv.state_dict())
    torch.testing.assert_close(model.layer3[1].conv2.weight, tv.layer3[1].conv2.weight)
    torch.testing.assert_close(model.conv1.weight, tv.conv1.weight)
    with torch.no_grad():
        outs = model.eval()(torch.randn(1, 3, 64, 64))
    assert [tuple(o.shape) for o in outs] == [(1, 256, 16, 16), (1, 512, 8, 8),
                                              (1, 1024, 4, 4), (1, 2048, 2, 2)]
    assert all(torch.isfinite(o).all() for o in outs)


def test_resnext_takes_conv_cfg_and_keeps_groups():
    model = ResNeXt(depth=50, groups=8, base_width=4, norm="GN", conv_cfg=WS)
    conv2 = model.layer1[0].conv2
    assert type(conv2) is ConvWS2d and conv2.groups == 8


def test_ws_backbone_equals_plain_backbone_with_standardized_weights():
    torch.manual_seed(0)
    model = _randomize_norms(ResNet(depth=18, norm="FrozenBN", conv_cfg=WS, frozen_stages=-1))
    plain = ResNet(depth=18, norm="FrozenBN", frozen_stages=-1)
    state = model.state_dict()
    for name, module in model.named_modules():
        if isinstance(module, ConvWS2d):
            state[f"{name}.weight"] = module.standardized_weight().detach()
    plain.load_state_dict(state)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():  # ResNet runs frozen BN folded into the (WS) conv while training
        for ours, ref in zip(model.train()(x), plain.train()(x), strict=True):
            torch.testing.assert_close(ours, ref, rtol=1e-4, atol=1e-4)


def test_frozen_bn_path_standardizes_then_scales():
    torch.manual_seed(0)
    conv = ConvWS2d(in_channels=3, out_channels=4, kernel_size=3, padding=1, bias=False)
    norm = _randomize_norms(nn.Sequential(FrozenBatchNorm2d(4)))[0]
    x = torch.randn(2, 3, 6, 6)
    torch.testing.assert_close(conv_frozen_bn(conv, norm, x), norm(conv(x)),
                               rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("norm", ["BN", "GN", "FrozenBN"])
def test_inference_fast_path_gives_equal_outputs(norm):
    torch.manual_seed(0)
    model = ResNet(depth=18, norm=norm, conv_cfg=WS, frozen_stages=-1, out_indices=(0, 1, 2, 3))
    model = _randomize_norms(model).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        expected = model(x)
        fast = prepare_for_inference(copy.deepcopy(model))
        folded = copy.deepcopy(model)
        fold_batch_norms(folded)
        for out in (fast(x), folded(x)):
            for ours, ref in zip(out, expected, strict=True):
                # Standardized filters grow activations layer by layer: compare relatively.
                assert _relative_error(ours, ref) < 1e-4
    assert not any(isinstance(m, ConvWS2d) for m in fast.modules())


def test_conv_cfg_errors_are_clear():
    conv = nn.Conv2d(3, 4, 3)
    with pytest.raises(ConfigError, match="stride"):
        conv_like(conv, {"type": "ConvWS", "stride": 2})
    with pytest.raises(ConfigError, match="not a Conv2d"):
        conv_like(conv, {"type": "DCN"})
    with pytest.raises(ConfigError, match="eps"):
        ResNet(depth=18, conv_cfg={"type": "ConvWS", "epsilon": 1e-5})


def test_tiny_gn_ws_faster_rcnn_trains_and_predicts():
    cfg = tiny_two_stage_cfg("faster")
    cfg["backbone"].update(norm="GN", conv_cfg=WS)
    model = build(cfg)
    assert isinstance(model.backbone.layer1[0].conv1, ConvWS2d)
    batch = rectangles_batch()
    history = train_steps(model, batch, steps=6, lr=0.005)
    totals = [sum(h.values()) for h in history]
    assert all(torch.isfinite(torch.tensor(totals)))
    assert min(totals[-2:]) < totals[0], history
    model.eval()
    empty = ImageBatch(images=torch.zeros(1, 3, 64, 64), samples=[rectangles_batch().samples[0]])
    empty.samples[0].gt = Instances.empty()
    with torch.no_grad():
        results = model.predict(batch) + model.predict(empty)
    assert len(results) == 3


def test_gn_ws_coco_recipe_builds():
    path = Path(__file__).resolve().parents[2] / "configs/gn+ws" / RECIPE
    cfg = load_config(path)
    fill_num_classes(cfg, [f"class{i}" for i in range(80)], source="test")
    torch.manual_seed(0)
    model = MODELS.build(cfg["model"])
    backbone = model.backbone
    assert sum(isinstance(m, ConvWS2d) for m in backbone.modules()) == 53
    assert sum(isinstance(m, nn.GroupNorm) for m in backbone.modules()) == 53
    assert sum(isinstance(m, nn.GroupNorm) for m in model.neck.modules()) > 0
    assert sum(isinstance(m, nn.GroupNorm) for m in model.roi_head.bbox_head.modules()) == 4
