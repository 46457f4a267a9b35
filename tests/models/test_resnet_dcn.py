"""Deformable 3x3 convs in ResNet / ResNeXt stages (``dcn`` + ``stage_with_dcn``)."""

from __future__ import annotations

import copy

import pytest
import torch
import torchvision
from torch import nn
from torchvision.ops.misc import FrozenBatchNorm2d

from detbox.deploy.backends.build import backend_detector
from detbox.deploy.onnx_export import export_onnx, verification_images, verify_onnx
from detbox.errors import ConfigError, DetboxError
from detbox.models.backbones import ResNet, ResNeXt
from detbox.models.fused_conv import FusedBottleneck
from detbox.models.inference_mode import prepare_for_inference
from detbox.models.layers import DeformConv, ModulatedDeformConv
from detbox.registry import MODELS
from detbox.structures import ImageBatch, Instances
from tests.tiny_detector import build_tiny, tiny_config

from ._helpers import make_sample, rectangle_image
from .test_inference_mode import _match_fraction, _randomize_norms
from .two_stage._tiny import build, rectangles_batch, tiny_two_stage_cfg, train_steps

C3_C5 = (False, True, True, True)


def _perturb_offsets(model: nn.Module, std: float = 0.05) -> None:
    """Give every offset conv non-zero weights, as after some training."""
    generator = torch.Generator().manual_seed(0)
    for module in model.modules():
        if isinstance(module, (DeformConv, ModulatedDeformConv)):
            weight = module.conv_offset.weight
            weight.data.copy_(torch.randn(weight.shape, generator=generator) * std)


@pytest.mark.parametrize("kind, layer_type", [("DCN", DeformConv),
                                              ("DCNv2", ModulatedDeformConv)])
def test_chosen_stages_get_deformable_conv2(kind, layer_type):
    model = ResNet(depth=50, out_indices=(0, 1, 2, 3), dcn={"type": kind, "deform_groups": 2},
                   stage_with_dcn=C3_C5)
    assert type(model.layer1[0].conv2) is nn.Conv2d
    for stage in (model.layer2, model.layer3, model.layer4):
        assert all(isinstance(block.conv2, layer_type) for block in stage)
    assert model.layer2[0].conv2.stride == (2, 2) and model.layer2[0].conv2.deform_groups == 2
    assert type(model.layer2[0].conv1) is nn.Conv2d  # only the 3x3 conv changes
    with torch.no_grad():
        outs = model.eval()(torch.zeros(1, 3, 64, 96))
    assert [tuple(o.shape) for o in outs] == [(1, 256, 16, 24), (1, 512, 8, 12),
                                              (1, 1024, 4, 6), (1, 2048, 2, 3)]


@pytest.mark.parametrize("kind", ["DCN", "DCNv2"])
def test_imagenet_weights_load_and_zero_offsets_give_the_plain_network(kind, tmp_path):
    """Golden: a DCN backbone loaded from a torchvision file computes torchvision's features
    until its offsets train; only the offset convs are not in the file."""
    torch.manual_seed(0)
    reference = _randomize_norms(torchvision.models.resnet50(weights=None)).eval()
    torch.save(reference.state_dict(), tmp_path / "r50.pth")
    dcn = {"type": kind, **({"mask_gain": 2.0} if kind == "DCNv2" else {})}  # masks start at 1
    model = ResNet(depth=50, out_indices=(1, 2, 3), dcn=dcn, stage_with_dcn=C3_C5)
    model.load_torchvision_weights(tmp_path / "r50.pth")
    assert torch.equal(model.layer3[4].conv2.weight, reference.layer3[4].conv2.weight)
    assert not model.layer3[4].conv2.conv_offset.weight.any()
    images = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        x = reference.layer1(reference.maxpool(reference.relu(reference.bn1(
            reference.conv1(images)))))
        expected = []
        for stage in (reference.layer2, reference.layer3, reference.layer4):
            x = stage(x)
            expected.append(x)
        for got, want in zip(model.eval()(images), expected):
            assert float((got - want).abs().max() / want.abs().max()) < 1e-5


def test_offsets_train_unless_their_stage_is_frozen():
    torch.manual_seed(0)
    model = ResNeXt(depth=50, groups=8, base_width=4, frozen_stages=2, norm="GN",
                    norm_eval=False, out_indices=(3,), dcn={"type": "DCNv2"},
                    stage_with_dcn=C3_C5)
    assert not model.layer2[0].conv2.conv_offset.weight.requires_grad  # stage 2 is frozen
    offset = model.layer3[0].conv2.conv_offset.weight
    assert offset.requires_grad
    model.train()(torch.randn(2, 3, 64, 64))[0].square().mean().backward()
    assert offset.grad.abs().sum() > 0
    assert model.layer2[0].conv2.conv_offset.weight.grad is None


def test_inference_mode_folds_the_norm_into_the_deformable_conv():
    torch.manual_seed(0)
    model = _randomize_norms(ResNeXt(depth=50, groups=8, base_width=4, out_indices=(0, 1, 2, 3),
                                     dcn={"type": "DCNv2"}, stage_with_dcn=C3_C5)).eval()
    _perturb_offsets(model)
    images = torch.randn(1, 3, 96, 64)
    with torch.no_grad():
        expected = model(images)
        fast = prepare_for_inference(copy.deepcopy(model))
        got = fast(images)
    assert not any(isinstance(m, FrozenBatchNorm2d) for m in fast.modules())
    assert isinstance(fast.layer3[1], FusedBottleneck)
    assert isinstance(fast.layer3[1].conv2, ModulatedDeformConv)
    assert fast.layer3[1].conv2.bias is not None  # the folded norm's shift
    for a, b in zip(expected, got):
        # Rounding differences of the folded weights also move the predicted offsets a little,
        # so deep DCN stages agree less closely than plain ones (1e-5); a wrong fold is O(1).
        assert a.shape == b.shape
        assert float((a - b).abs().max() / a.abs().max()) < 1e-3


def test_config_errors_are_clear():
    with pytest.raises(ConfigError, match="stage_with_dcn selects stages but dcn is None"):
        ResNet(depth=50, stage_with_dcn=C3_C5)
    with pytest.raises(ConfigError, match="selects no stage"):
        ResNet(depth=50, dcn={"type": "DCN"})
    with pytest.raises(ConfigError, match="depth >= 50"):
        ResNet(depth=18, dcn={"type": "DCN"}, stage_with_dcn=C3_C5)
    with pytest.raises(ConfigError, match="one flag per stage"):
        ResNet(depth=50, dcn={"type": "DCN"}, stage_with_dcn=(True, True, True))
    with pytest.raises(ConfigError, match="only 3 stages are built"):
        ResNet(depth=50, num_stages=3, out_indices=(2,), dcn={"type": "DCN"},
               stage_with_dcn=C3_C5)
    with pytest.raises(ConfigError, match="unknown key 'fallback_on_stride'"):
        MODELS.build({"type": "ResNet", "depth": 50, "stage_with_dcn": C3_C5,
                      "dcn": {"type": "DCN", "fallback_on_stride": False}})


def tiny_dcn_faster_rcnn(kind: str = "DCN") -> dict:
    cfg = tiny_two_stage_cfg("faster")
    cfg["backbone"] = {"type": "ResNet", "depth": 50, "out_indices": (0, 1, 2, 3),
                       "frozen_stages": -1, "norm": "GN", "norm_eval": False,
                       "dcn": {"type": kind}, "stage_with_dcn": C3_C5}
    cfg["neck"]["in_channels"] = [256, 512, 1024, 2048]
    return cfg


@pytest.mark.parametrize("kind", ["DCN", "DCNv2"])
def test_faster_rcnn_with_dcn_trains_and_predicts(kind):
    model = build(tiny_dcn_faster_rcnn(kind))
    offset = model.backbone.layer3[0].conv2.conv_offset.weight
    batch = rectangles_batch()
    history = train_steps(model, batch, steps=6, lr=0.005)
    totals = [sum(h.values()) for h in history]
    assert all(torch.isfinite(torch.tensor(totals)))
    assert min(totals[-2:]) < totals[0], history
    assert offset.abs().sum() > 0  # the offsets moved off zero
    model.eval()
    empty = ImageBatch(images=torch.zeros(1, 3, 64, 64), samples=[rectangles_batch().samples[0]])
    empty.samples[0].gt = Instances.empty()
    with torch.no_grad():
        results = model.predict(batch) + model.predict(empty)
    assert len(results) == 3
    assert all(r.boxes.shape[1] == 4 and torch.isfinite(r.boxes).all() for r in results)


@pytest.mark.parametrize("kind", ["DCN", "DCNv2"])
def test_onnx_export_matches_pytorch_and_backends_refuse_with_one_line(kind, tmp_path):
    pytest.importorskip("onnxruntime")
    torch.manual_seed(0)
    cfg = tiny_dcn_faster_rcnn(kind)
    del cfg["roi_head"]["bbox_head"]["num_classes"]  # from the tiny data's classes
    model = build_tiny(tiny_config(cfg))
    model.roi_head.bbox_head.score_thr = 0.0
    _perturb_offsets(model.backbone)  # the points really move
    path = export_onnx(model, tmp_path / "model.onnx", shape=(64, 64))  # as ONNX DeformConv
    reports = verify_onnx(model, path, verification_images((64, 96)))
    for report in reports[:-1]:
        assert report.ok, report.problems
        assert report.num_torch == report.num_onnx > 0
    with pytest.raises(DetboxError, match="^--backend onnxruntime: FasterRCNN with deformable "
                       r"convs in its backbone \(dcn; backbone.layer2.0.conv2 ...\) is not "
                       "supported; it supports RetinaNet"):
        backend_detector(model, "onnxruntime")


def test_fast_path_keeps_dcn_detector_detections():
    torch.manual_seed(0)
    cfg = tiny_dcn_faster_rcnn("DCNv2")
    cfg["backbone"].update(norm="FrozenBN", norm_eval=True)
    cfg["roi_head"]["bbox_head"]["score_thr"] = 0.0
    # Offsets at their initial zero: on random weights (features up to ~1e3) non-zero offsets
    # grow with the features, and each of the 13 DCN blocks then amplifies float rounding
    # (channels-last alone moves C5 by 1e-4 at offsets of 0.1 px, 10% at 7 px), too much for
    # detection-level tolerances; the backbone test above covers learned offsets.
    model = _randomize_norms(MODELS.build(cfg)).eval()
    batch = ImageBatch(rectangle_image((16, 12, 48, 40)), [make_sample()])
    with torch.no_grad():
        expected = model.predict(batch)[0]
        got = prepare_for_inference(copy.deepcopy(model)).predict(batch)[0]
    assert len(expected) > 10
    assert _match_fraction(expected, got) >= 0.99
    assert isinstance(model.backbone.layer4[0].conv2, ModulatedDeformConv)
