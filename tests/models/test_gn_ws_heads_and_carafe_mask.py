"""Weight-standardized convs (``conv_cfg``) in the FPN and RoI heads, CARAFE as the mask
head's upsampling, and the GN+WS, CARAFE and from-scratch recipes."""

from __future__ import annotations

import copy
import math
import warnings
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from detbox.config import load_config
from detbox.errors import ConfigError
from detbox.models.layers import CARAFE, ConvWS2d
from detbox.models.necks import FPN, PAFPN
from detbox.registry import MODELS
from detbox.structures import ImageBatch

from ._helpers import make_sample
from .two_stage._tiny import build, rectangles_batch, tiny_two_stage_cfg, train_steps

WS = {"type": "ConvWS"}
CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def _feats() -> list[torch.Tensor]:
    torch.manual_seed(0)
    return [torch.randn(2, c, s, s) for c, s in ((8, 16), (16, 8), (32, 4))]


@pytest.mark.parametrize("neck_type", [FPN, PAFPN])
def test_fpn_convs_are_weight_standardized_when_asked(neck_type):
    torch.manual_seed(0)
    neck = neck_type(in_channels=[8, 16, 32], out_channels=32, num_outs=5, norm="GN",
                     conv_cfg=WS)
    convs = [m for m in neck.modules() if isinstance(m, nn.Conv2d)]
    assert convs and all(isinstance(m, ConvWS2d) for m in convs)
    for conv in convs:
        flat = conv.standardized_weight().flatten(1)
        torch.testing.assert_close(flat.mean(1), torch.zeros(len(flat)), atol=1e-5, rtol=0)
        torch.testing.assert_close(flat.std(1), torch.ones(len(flat)), atol=1e-3, rtol=0)
        assert flat.std(1).sub(1).abs().max() < 1e-3
        assert conv.weight.flatten(1).std(1).sub(1).abs().min() > 0.1  # raw weights are not
    # ... and used: the lateral conv computes with the standardized kernel
    lateral = neck.lateral_convs[0][0]
    x = _feats()[0]
    torch.testing.assert_close(lateral(x), F.conv2d(x, lateral.standardized_weight()))
    plain = neck_type(in_channels=[8, 16, 32], out_channels=32, num_outs=5, norm="GN")
    plain.load_state_dict(neck.state_dict())  # same keys, raw weights
    assert not torch.allclose(neck(_feats())[0], plain(_feats())[0], atol=1e-3)


def test_roi_head_convs_are_weight_standardized_when_asked():
    bbox_head = MODELS.build({"type": "ConvFCBBoxHead", "num_classes": 2, "in_channels": 32,
                              "num_convs": 2, "conv_channels": 32, "num_fcs": 1,
                              "norm": "GN", "conv_cfg": WS})
    mask_head = MODELS.build({"type": "FCNMaskHead", "num_classes": 2, "in_channels": 32,
                              "conv_channels": 32, "norm": "GN", "conv_cfg": WS})
    assert [type(b[0]) for b in bbox_head.convs] == [ConvWS2d] * 2
    assert [type(b[0]) for b in mask_head.convs] == [ConvWS2d] * 4
    assert isinstance(mask_head.convs[0][1], nn.GroupNorm) and mask_head.convs[0][0].bias is None
    scores, deltas = bbox_head(torch.randn(3, 32, 7, 7))
    assert scores.shape == (3, 3) and deltas.shape == (3, 8)


def test_unknown_conv_type_is_a_clear_error():
    with pytest.raises(ConfigError, match="ConvWSS"):
        FPN(in_channels=[8, 16], out_channels=8, num_outs=2, conv_cfg={"type": "ConvWSS"})
    with pytest.raises(ConfigError, match="not a Conv2d"):
        MODELS.build({"type": "FCNMaskHead", "num_classes": 2, "conv_cfg": {"type": "FPN"}})


def _mask_head(**overrides) -> nn.Module:
    cfg = {"type": "FCNMaskHead", "num_classes": 3, "in_channels": 16, "num_convs": 2,
           "conv_channels": 16, **overrides}
    torch.manual_seed(0)
    return MODELS.build(cfg)


@pytest.mark.parametrize("upsample_cfg, size", [
    (None, 28),
    ({"type": "carafe"}, 28),
    ({"type": "carafe", "scale_factor": 4, "k_up": 3, "compressed_channels": 8}, 56),
    ({"type": "nearest"}, 28),
    ({"type": "bilinear", "scale_factor": 3}, 42),
])
def test_mask_head_upsampling_shapes(upsample_cfg, size):
    head = _mask_head(upsample_cfg=upsample_cfg)
    assert head.mask_size == size
    assert head(torch.randn(5, 16, 14, 14)).shape == (5, 3, size, size)
    assert head(torch.zeros(0, 16, 14, 14)).shape == (0, 3, size, size)


def test_carafe_mask_head_keeps_the_deconv_heads_keys_but_the_upsampler():
    deconv, carafe = _mask_head(), _mask_head(upsample_cfg={"type": "carafe"})
    assert isinstance(carafe.upsample, CARAFE) and isinstance(carafe.relu, nn.Identity)
    assert isinstance(deconv.upsample, nn.ConvTranspose2d)
    others = {k for k in deconv.state_dict() if not k.startswith("upsample.")}
    assert others == {k for k in carafe.state_dict() if not k.startswith("upsample.")}
    # CARAFE's own init (near-zero encoder: near-uniform kernels), not the heads' Kaiming init
    assert carafe.upsample.encoder.weight.std() < 0.01
    x = torch.randn(2, 16, 14, 14)
    feats = carafe.convs(x)
    expected = carafe.predictor(carafe.upsample(feats))
    torch.testing.assert_close(carafe(x), expected)


def test_deconv_default_is_unchanged():
    head = _mask_head()
    x = torch.randn(2, 16, 14, 14)
    expected = head.predictor(F.relu(head.upsample(head.convs(x))))
    torch.testing.assert_close(head(x), expected)


@pytest.mark.parametrize("upsample_cfg, match", [
    ({"type": "pixelshuffle"}, "upsample_cfg type"),
    ({"type": "deconv", "k_up": 5}, "scale_factor"),
    ({"type": "carafe", "kup": 5}, "k_up"),
    ({"type": "carafe", "scale_factor": 1.5}, "scale_factor"),
])
def test_mask_upsample_config_errors_are_clear(upsample_cfg, match):
    with pytest.raises(ConfigError, match=match):
        _mask_head(upsample_cfg=upsample_cfg)


def _gn_ws_carafe_mask_rcnn() -> dict:
    cfg = tiny_two_stage_cfg("mask")
    cfg["backbone"]["conv_cfg"] = WS
    cfg["neck"]["conv_cfg"] = WS  # no GN: 16 channels do not split into 32 groups
    cfg["roi_head"]["bbox_head"].update(type="ConvFCBBoxHead", num_convs=2, conv_channels=32,
                                        num_fcs=1, norm="GN", conv_cfg=WS)
    cfg["roi_head"]["bbox_head"].pop("fc_channels")
    cfg["roi_head"]["mask_head"].update(norm="GN", conv_cfg=WS, conv_channels=32,
                                        upsample_cfg={"type": "carafe", "compressed_channels": 8})
    return cfg


def test_tiny_gn_ws_mask_rcnn_with_carafe_mask_head_trains_and_predicts():
    model = build(_gn_ws_carafe_mask_rcnn())
    encoder = model.roi_head.mask_head.upsample.encoder.weight
    before = encoder.detach().clone()
    history = train_steps(model, rectangles_batch(), 3)
    assert all(math.isfinite(v) for step in history for v in step.values())
    assert history[0]["loss_mask"] > 0
    assert not torch.equal(encoder, before)
    model.eval()
    empty = ImageBatch(images=torch.zeros(1, 3, 64, 64), samples=[make_sample()])
    with torch.no_grad():
        (result,) = model.predict(empty)
    assert result.masks.shape[1:] == (64, 64)


RECIPES = {
    "carafe/mask_rcnn_r50_fpn_carafe_1x_coco.py": "carafe",
    "gn+ws/faster_rcnn_r50_fpn_gn_ws-all_1x_coco.py": "gn_ws",
    "gn+ws/mask_rcnn_r50_fpn_gn_ws-all_2x_coco.py": "gn_ws",
    "gn+ws/mask_rcnn_r50_fpn_gn_ws-all_20_23_24e_coco.py": "gn_ws",
    "scratch/faster_rcnn_r50_fpn_gn-all_scratch_6x_coco.py": "scratch",
    "scratch/mask_rcnn_r50_fpn_gn-all_scratch_6x_coco.py": "scratch",
}


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_recipes_build_what_they_say(name):
    cfg = load_config(CONFIGS / name)
    cfg.model.roi_head.bbox_head["num_classes"] = 80
    if "mask_head" in cfg.model.roi_head:
        cfg.model.roi_head.mask_head["num_classes"] = 80
    model = MODELS.build(cfg.model)
    kind = RECIPES[name]
    roi = model.roi_head
    if kind == "carafe":
        assert isinstance(roi.mask_head.upsample, CARAFE) and model.neck.upsamplers is not None
        assert roi.mask_head.mask_size == 28
        return
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert not norms  # GN everywhere
    ws = kind == "gn_ws"
    assert isinstance(model.neck.lateral_convs[0][0], ConvWS2d) == ws
    assert isinstance(roi.bbox_head.convs[0][0], ConvWS2d) == ws
    assert len(roi.bbox_head.convs) == 4
    if "mask_head" in cfg.model.roi_head:
        assert isinstance(roi.mask_head.convs[0][1], nn.GroupNorm)
        assert isinstance(roi.mask_head.convs[0][0], ConvWS2d) == ws
    if kind == "scratch":
        assert "init_cfg" not in cfg.model and cfg.train_cfg.max_epochs == 73
        assert all(p.requires_grad for p in model.parameters())  # nothing frozen
        assert model.backbone.frozen_parts() == []
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            model.init_weights()
    else:
        assert cfg.model.init_cfg == {"backbone_checkpoint": "torchvision://resnet50"}


def test_20_23_24e_schedule_differs_from_the_2x_only_in_its_steps():
    two_x = load_config(CONFIGS / "gn+ws/mask_rcnn_r50_fpn_gn_ws-all_2x_coco.py")
    paper = load_config(CONFIGS / "gn+ws/mask_rcnn_r50_fpn_gn_ws-all_20_23_24e_coco.py")
    assert paper.lr_schedule.milestones == [20, 23] and two_x.lr_schedule.milestones == [16, 22]
    assert paper.model == two_x.model and paper.train_cfg == two_x.train_cfg
    assert copy.deepcopy(paper.optimizer) == two_x.optimizer
