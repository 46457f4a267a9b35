"""``style='caffe'``: the stride of a stage's first bottleneck sits in its first 1x1 conv."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from detbox.errors import ConfigError
from detbox.models.backbones import ResNet, ResNeXt, make_resnet_stage
from detbox.models.inference_mode import prepare_for_inference
from detbox.models.layers import DeformConv
from detbox.registry import MODELS
from detbox.structures import ImageBatch, Instances

from .test_inference_mode import _randomize_norms
from .two_stage._tiny import build, rectangles_batch, tiny_two_stage_cfg, train_steps

C3_C5 = (False, True, True, True)


def _frozen_bn(x: torch.Tensor, state: dict, name: str) -> torch.Tensor:
    scale = state[f"{name}.weight"] / (state[f"{name}.running_var"] + 1e-5).sqrt()
    shift = state[f"{name}.bias"] - state[f"{name}.running_mean"] * scale
    return x * scale[None, :, None, None] + shift[None, :, None, None]


def _reference_caffe_resnet(state: dict, images: torch.Tensor, blocks: tuple[int, ...]
                            ) -> list[torch.Tensor]:
    """A caffe-style bottleneck ResNet written out from its state dict: the first block of
    stages 2..4 downsamples in its 1x1 conv1 (and in the 1x1 shortcut)."""
    x = F.relu(_frozen_bn(F.conv2d(images, state["conv1.weight"], stride=2, padding=3),
                          state, "bn1"))
    x = F.max_pool2d(x, 3, stride=2, padding=1)
    outs = []
    for stage, count in enumerate(blocks):
        for index in range(count):
            name = f"layer{stage + 1}.{index}"
            stride = 2 if stage > 0 and index == 0 else 1
            out = F.conv2d(x, state[f"{name}.conv1.weight"], stride=stride)
            out = F.relu(_frozen_bn(out, state, f"{name}.bn1"))
            out = F.relu(_frozen_bn(F.conv2d(out, state[f"{name}.conv2.weight"], padding=1),
                                    state, f"{name}.bn2"))
            out = _frozen_bn(F.conv2d(out, state[f"{name}.conv3.weight"]), state, f"{name}.bn3")
            shortcut = x
            if f"{name}.downsample.0.weight" in state:
                shortcut = _frozen_bn(F.conv2d(x, state[f"{name}.downsample.0.weight"],
                                               stride=stride), state, f"{name}.downsample.1")
            x = F.relu(out + shortcut)
        outs.append(x)
    return outs


def _strides(model: nn.Module, layer: str) -> tuple:
    block = getattr(model, layer)[0]
    return block.conv1.stride, block.conv2.stride, block.downsample[0].stride


def test_caffe_style_moves_the_stride_to_conv1_and_keeps_the_keys():
    pytorch, caffe = ResNet(depth=50), ResNet(depth=50, style="caffe")
    assert pytorch.style == "pytorch" and caffe.style == "caffe"
    for layer in ("layer2", "layer3", "layer4"):
        assert _strides(pytorch, layer) == ((1, 1), (2, 2), (2, 2))
        assert _strides(caffe, layer) == ((2, 2), (1, 1), (2, 2))
        assert all(b.conv2.stride == (1, 1) for b in list(getattr(caffe, layer))[1:])
    assert _strides(caffe, "layer1") == ((1, 1), (1, 1), (1, 1))
    assert list(caffe.state_dict()) == list(pytorch.state_dict())
    caffe.load_state_dict(pytorch.state_dict())
    images = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        a, b = pytorch.eval()(images), caffe.eval()(images)
    assert [o.shape for o in a] == [o.shape for o in b] == [
        (1, 512, 8, 12), (1, 1024, 4, 6), (1, 2048, 2, 3)]
    assert not torch.allclose(a[-1], b[-1])  # same weights, another network


@pytest.mark.parametrize("size", [(64, 96), (67, 93)])
def test_caffe_features_match_a_written_out_reference(size):
    torch.manual_seed(0)
    model = ResNet(depth=50, style="caffe", out_indices=(0, 1, 2, 3))
    model = _randomize_norms(model).double().eval()  # float64: 53 layers, no rounding noise
    images = torch.randn(1, 3, *size, dtype=torch.float64)
    with torch.no_grad():
        got = model(images)
        expected = _reference_caffe_resnet(model.state_dict(), images, (3, 4, 6, 3))
    for a, b in zip(got, expected):
        assert a.shape == b.shape
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9)


def test_basic_blocks_and_resnext_and_a_single_stage():
    assert _strides(ResNet(depth=18, style="caffe"), "layer2")[:2] == ((2, 2), (1, 1))
    x101 = ResNeXt(depth=50, groups=8, base_width=4, style="caffe")
    assert _strides(x101, "layer3") == ((2, 2), (1, 1), (2, 2))
    assert x101.layer3[0].conv2.groups == 8
    res5 = make_resnet_stage(depth=50, stage=3, style="caffe")
    assert (res5[0].conv1.stride, res5[0].conv2.stride) == ((2, 2), (1, 1))
    assert make_resnet_stage(depth=50, stage=3)[0].conv2.stride == (2, 2)
    head = MODELS.build({"type": "Res5RoIHead", "depth": 50, "style": "caffe", "bbox_head": {
        "type": "ConvFCBBoxHead", "num_classes": 2, "in_channels": 2048, "with_avg_pool": True,
        "num_fcs": 0}})
    assert (head.res5[0].conv1.stride, head.res5[0].conv2.stride) == ((2, 2), (1, 1))
    with pytest.raises(ConfigError, match="style"):
        MODELS.build({"type": "ResNet", "style": "cafe"})
    with pytest.raises(ConfigError, match="style"):
        ResNet(style="detectron")


def test_frozen_stages_and_norm_eval_keep_working():
    torch.manual_seed(0)
    model = ResNet(depth=50, style="caffe", frozen_stages=2, norm="BN", norm_eval=True,
                   out_indices=(3,)).train()
    assert not any(p.requires_grad for p in model.layer2.parameters())
    assert all(p.requires_grad for p in model.layer3.parameters())
    assert not model.layer3[0].bn1.training and not model.layer2[0].bn1.training
    frozen = copy.deepcopy(model.layer2.state_dict())
    mean = model.layer3[0].bn1.running_mean.clone()
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    model(torch.randn(2, 3, 64, 64))[0].mean().backward()
    optimizer.step()
    assert all(torch.equal(v, model.layer2.state_dict()[k]) for k, v in frozen.items())
    assert torch.equal(model.layer3[0].bn1.running_mean, mean)
    assert model.layer3[0].conv1.weight.grad.abs().sum() > 0


def test_inference_mode_folding_keeps_caffe_features():
    torch.manual_seed(0)
    model = _randomize_norms(ResNet(depth=50, style="caffe", out_indices=(0, 1, 2, 3))).eval()
    images = torch.randn(1, 3, 64, 80)
    with torch.no_grad():
        expected = model(images)
        got = prepare_for_inference(copy.deepcopy(model))(images)
    for a, b in zip(expected, got):
        assert a.shape == b.shape
        assert float((a - b).abs().max() / a.abs().max()) < 1e-4


def test_deformable_stages_keep_the_caffe_stride_and_start_as_the_plain_network():
    torch.manual_seed(0)
    plain = _randomize_norms(ResNet(depth=50, style="caffe")).eval()
    dcn = ResNet(depth=50, style="caffe", dcn={"type": "DCN"}, stage_with_dcn=C3_C5).eval()
    conv2 = dcn.layer3[0].conv2
    assert isinstance(conv2, DeformConv) and conv2.stride == (1, 1)
    assert dcn.layer3[0].conv1.stride == (2, 2)
    dcn.load_state_dict(plain.state_dict(), strict=False)  # offsets stay zero
    images = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        for a, b in zip(plain(images), dcn(images)):
            assert float((a - b).abs().max() / a.abs().max()) < 1e-5


def test_plugins_and_weight_standardized_convs_keep_the_caffe_stride():
    model = ResNet(depth=50, style="caffe", norm="GN", conv_cfg={"type": "ConvWS"},
                   plugins=[{"cfg": {"type": "ContextBlock", "ratio": 1 / 16},
                             "stages": C3_C5}])
    block = model.layer2[0]
    assert (block.conv1.stride, block.conv2.stride) == ((2, 2), (1, 1))
    assert type(block.conv1).__name__ == "ConvWS2d" and hasattr(block, "after_conv3")
    outs = model(torch.randn(1, 3, 64, 64))
    assert [tuple(o.shape[-2:]) for o in outs] == [(8, 8), (4, 4), (2, 2)]


def tiny_caffe_faster_rcnn() -> dict:
    cfg = tiny_two_stage_cfg("faster")
    cfg["backbone"] = {"type": "ResNet", "depth": 50, "style": "caffe",
                       "out_indices": (0, 1, 2, 3), "frozen_stages": 1, "norm": "FrozenBN"}
    cfg["neck"]["in_channels"] = [256, 512, 1024, 2048]
    return cfg


def test_caffe_style_faster_rcnn_trains_and_predicts():
    model = build(tiny_caffe_faster_rcnn())
    assert model.backbone.layer2[0].conv1.stride == (2, 2)
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
    assert all(r.boxes.shape[1] == 4 and torch.isfinite(r.boxes).all() for r in results)
