"""The inference fast path: folded batch norms, channels-last weights, fused conv+ReLU."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from torch import nn
from torchvision.models.resnet import Bottleneck
from torchvision.ops.misc import FrozenBatchNorm2d

from detbox.apis.build import build_detector, fill_num_classes
from detbox.apis.inference import init_detector
from detbox.config import load_config
from detbox.engine.checkpoint import save_checkpoint
from detbox.models.fused_conv import (
    FusedBasicBlock,
    FusedBottleneck,
    FusedConvReLU,
    conv_add,
    conv_add_relu,
    conv_relu,
)
from detbox.models.inference_mode import fold_batch_norms, fold_conv_bn, prepare_for_inference
from detbox.registry import MODELS
from detbox.structures import ImageBatch, Instances

from ._helpers import make_sample, rectangle_image
from .two_stage._tiny import tiny_two_stage_cfg

REPO_ROOT = Path(__file__).resolve().parents[2]
DEMO = REPO_ROOT / "configs/demo/retinanet_r18_fpn_synthetic.py"
BOX_TOL, SCORE_TOL = 0.01, 1e-4


def _randomize_norms(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give every frozen BN non-trivial statistics and affine parameters."""
    generator = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, (FrozenBatchNorm2d, nn.BatchNorm2d)):
            c = module.running_mean.numel()
            module.running_mean.copy_(torch.randn(c, generator=generator) * 0.1)
            module.running_var.copy_(torch.rand(c, generator=generator) * 0.5 + 0.5)
            module.weight.data.copy_(torch.rand(c, generator=generator) + 0.5)
            module.bias.data.copy_(torch.randn(c, generator=generator) * 0.1)
    return model


def _backbone_and_neck() -> nn.Sequential:
    torch.manual_seed(0)
    backbone = MODELS.build({"type": "ResNet", "depth": 18, "out_indices": (0, 1, 2, 3),
                             "frozen_stages": -1, "norm": "FrozenBN"})
    neck = MODELS.build({"type": "FPN", "in_channels": [64, 128, 256, 512], "out_channels": 16,
                         "num_outs": 5})
    return _randomize_norms(nn.Sequential(backbone, neck)).eval()


def _relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / a.abs().max().clamp(min=1e-12))


def test_fold_conv_bn_matches_conv_then_bn():
    torch.manual_seed(0)
    for bias in (False, True):
        conv = nn.Conv2d(4, 6, 3, padding=1, bias=bias)
        norm = _randomize_norms(nn.Sequential(nn.BatchNorm2d(6)))[0].eval()
        x = torch.randn(2, 4, 9, 7)
        expected = norm(conv(x))
        fold_conv_bn(conv, norm)
        assert conv.bias is not None
        torch.testing.assert_close(conv(x), expected, rtol=1e-5, atol=1e-5)


def test_folding_keeps_resnet_fpn_features_within_1e_4():
    model = _backbone_and_neck()
    images = torch.randn(1, 3, 96, 128)
    with torch.no_grad():
        expected = model(images)
        fast = prepare_for_inference(copy.deepcopy(model))
        got = fast(images)
    assert not any(isinstance(m, FrozenBatchNorm2d) for m in fast.modules())
    assert any(isinstance(m, FusedBasicBlock) for m in fast.modules())
    assert fast[0].conv1.weight.is_contiguous(memory_format=torch.channels_last)
    assert len(got) == len(expected) == 5
    for a, b in zip(expected, got):
        assert a.shape == b.shape
        assert _relative_error(a, b) < 1e-4


def test_fold_counts_every_norm_and_leaves_training_bn_alone():
    model = _backbone_and_neck()
    num_norms = sum(isinstance(m, FrozenBatchNorm2d) for m in model.modules())
    assert fold_batch_norms(copy.deepcopy(model)) == num_norms == 20  # ResNet-18
    block = nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4)).train()
    assert fold_batch_norms(block) == 0 and isinstance(block[1], nn.BatchNorm2d)
    assert fold_batch_norms(block.eval()) == 1 and isinstance(block[1], nn.Identity)


def test_fused_kernels_equal_conv_relu_with_and_without_grad():
    torch.manual_seed(0)
    conv = nn.Conv2d(8, 8, 3, padding=1, stride=2)
    x, other = torch.randn(1, 8, 16, 12), torch.randn(1, 8, 8, 6)
    with torch.no_grad():
        torch.testing.assert_close(conv_relu(conv, x), torch.relu(conv(x)))
        torch.testing.assert_close(conv_add_relu(conv, x, other), torch.relu(conv(x) + other))
        lateral = nn.Conv2d(8, 8, 1)
        y, top = torch.randn(1, 8, 8, 6), torch.randn(1, 8, 8, 6)
        expected, fresh = lateral(y) + top, top.clone()
        summed = conv_add(lateral, y, fresh, into_other=True)
        assert summed.data_ptr() == fresh.data_ptr()
        torch.testing.assert_close(summed, expected)
        torch.testing.assert_close(conv_add(lateral, y, top), expected)
    out = FusedConvReLU(conv)(x)  # autograd: the plain path, gradients flow
    out.sum().backward()
    assert conv.weight.grad is not None


@pytest.mark.parametrize("layout", [torch.channels_last, torch.contiguous_format])
def test_fused_block_writes_its_output_over_a_shortcut_it_may_take(layout):
    torch.manual_seed(0)
    blocks = {}
    for name, downsample in (("identity", None), ("downsample", nn.Conv2d(64, 256, 1))):
        block = Bottleneck(64 if downsample else 256, 64, downsample=downsample).eval()
        block.bn1 = block.bn2 = block.bn3 = nn.Identity()
        blocks[name] = FusedBottleneck(block).to(memory_format=layout)
    with torch.inference_mode():
        x = torch.randn(1, 256, 12, 10).contiguous(memory_format=layout)
        expected = torch.relu(blocks["identity"].conv3(torch.relu(blocks["identity"].conv2(
            torch.relu(blocks["identity"].conv1(x))))) + x)
        kept = x.clone()
        torch.testing.assert_close(blocks["identity"](kept), expected)
        assert torch.equal(kept, x)  # not asked to: the input stays
        out = blocks["identity"](kept, overwrite_input=True)
        assert out.data_ptr() == kept.data_ptr() and torch.equal(out, blocks["identity"](x))
        small = torch.randn(1, 64, 12, 10).contiguous(memory_format=layout)
        small_copy = small.clone()
        out = blocks["downsample"](small)  # the downsampling branch's output is its own
        assert torch.equal(small, small_copy) and out.data_ptr() != small.data_ptr()


def test_fast_backbone_spares_outputs_that_a_stage_output_or_a_hook_keeps():
    torch.manual_seed(0)
    backbone = _randomize_norms(MODELS.build({
        "type": "ResNet", "depth": 18, "out_indices": (0, 1, 2, 3), "frozen_stages": -1,
        "norm": "FrozenBN"})).eval()
    images = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        expected = backbone(images)
        fast = prepare_for_inference(copy.deepcopy(backbone))
        kept = []
        fast.layer2[0].register_forward_hook(lambda m, i, out: kept.append((out, out.clone())))
        got = fast(images)
    for a, b in zip(expected, got):  # each stage output survives the next stage
        assert _relative_error(a, b) < 1e-4
    (hooked, at_the_time), = kept
    assert torch.equal(hooked, at_the_time)  # layer2[1] did not write over it


def _match_fraction(ref: Instances, ours: Instances) -> float:
    free = torch.ones(len(ours), dtype=torch.bool)
    matched = 0
    for box, label, score in zip(ref.boxes, ref.labels, ref.scores):
        close = (free & (ours.labels == label)
                 & ((ours.boxes - box).abs().amax(dim=1) <= BOX_TOL)
                 & ((ours.scores - score).abs() <= SCORE_TOL))
        hits = torch.nonzero(close).flatten()
        if hits.numel():
            free[hits[0]] = False
            matched += 1
    return matched / max(len(ref), len(ours), 1)


def tiny_frozen_detector(kind: str) -> tuple[nn.Module, ImageBatch]:
    """A tiny two-stage detector (``kind``: faster / mask) with frozen BN of non-trivial
    statistics, scoring every detection (threshold 0), and an image to predict."""
    torch.manual_seed(0)
    cfg = tiny_two_stage_cfg(kind)
    cfg["backbone"] = dict(cfg["backbone"], norm="FrozenBN", norm_eval=True)
    cfg["roi_head"]["bbox_head"]["score_thr"] = 0.0
    model = _randomize_norms(MODELS.build(cfg)).eval()
    return model, ImageBatch(rectangle_image((16, 12, 48, 40)), [make_sample()])


@pytest.mark.parametrize("kind", ["faster", "mask"])
def test_fast_path_keeps_tiny_detector_detections(kind):
    model, batch = tiny_frozen_detector(kind)
    with torch.no_grad():
        expected = model.predict(batch)[0]
        got = prepare_for_inference(copy.deepcopy(model)).predict(batch)[0]
    assert len(expected) > 10
    assert _match_fraction(expected, got) >= 0.99
    if kind == "mask":
        assert got.masks.shape == expected.masks.shape
        agree = (got.masks == expected.masks).float().mean()
        assert agree > 0.999


@pytest.fixture(scope="module")
def demo_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("fast_path")
    cfg = load_config(DEMO)
    fill_num_classes(cfg, ["a", "b"], "test")
    torch.manual_seed(0)
    model = build_detector(cfg.model, ["a", "b"], [1, 2])
    return save_checkpoint(root / "model.pth", model=model, meta=model.dataset_meta)


def test_init_detector_is_fast_by_default_and_plain_on_request(demo_checkpoint):
    plain = init_detector(str(DEMO), demo_checkpoint, device="cpu", fast=False)
    fast = init_detector(str(DEMO), demo_checkpoint, device="cpu")
    assert any(isinstance(m, nn.BatchNorm2d) for m in plain.modules())
    assert not any(isinstance(m, (FusedBasicBlock, FusedConvReLU)) for m in plain.modules())
    assert not any(isinstance(m, nn.BatchNorm2d) for m in fast.modules())
    assert any(isinstance(m, FusedBasicBlock) for m in fast.modules())
    batch = ImageBatch(rectangle_image((8, 8, 40, 40)), [make_sample()])
    with torch.no_grad():
        a, b = plain.extract_feat(batch.images), fast.extract_feat(batch.images)
    for x, y in zip(a, b):
        assert _relative_error(x, y) < 1e-4
