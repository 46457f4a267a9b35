"""RetinaSepBNHead: tower convs shared over levels, norms per level (NAS-FPN's head)."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from detbox.config import load_config
from detbox.errors import ConfigError
from detbox.models.dense_heads import RetinaHead, RetinaSepBNHead
from detbox.models.inference_mode import prepare_for_inference
from detbox.registry import MODELS
from detbox.structures import ImageBatch

from ._helpers import make_sample, rectangle_image, tiny_retinanet_cfg
from .test_nas_fpn import RECIPE


def _head(**overrides) -> RetinaSepBNHead:
    torch.manual_seed(0)
    cfg = {"type": "RetinaSepBNHead", "num_classes": 3, "in_channels": 8, "feat_channels": 8,
           "stacked_convs": 2, **overrides}
    return MODELS.build(cfg)


def _levels(batch: int = 2) -> list[torch.Tensor]:
    torch.manual_seed(1)
    return [torch.randn(batch, 8, s, s) for s in (16, 8, 4, 2, 1)]


def test_convs_are_shared_and_every_level_has_its_own_norms():
    head = _head()
    assert head.num_ins == 5  # the default anchor generator's five levels
    assert len(head.cls_convs.convs) == 2 and len(head.cls_convs.norms) == 5
    assert all(c.bias is None for c in head.cls_convs.convs)  # BN's shift replaces it
    norms = [n for level in head.cls_convs.norms for n in level]
    assert all(isinstance(n, nn.BatchNorm2d) for n in norms)
    assert len({id(n) for n in norms}) == 10
    plain_head = MODELS.build({"type": "RetinaHead", "num_classes": 3, "in_channels": 8,
                               "feat_channels": 8, "stacked_convs": 2, "norm": "BN"})
    count = sum(p.numel() for p in head.parameters())
    # the same convs as RetinaHead's; four more levels of (scale, shift) per norm
    assert count == sum(p.numel() for p in plain_head.parameters()) + 2 * 2 * 4 * 2 * 8


def test_forward_is_conv_then_the_levels_norm_then_relu_with_shared_outputs():
    head = _head().eval()
    generator = torch.Generator().manual_seed(0)
    for level in head.cls_convs.norms:  # distinct statistics per level
        for norm in level:
            norm.running_mean.copy_(torch.randn(8, generator=generator))
            norm.running_var.copy_(torch.rand(8, generator=generator) + 0.5)
    feats = _levels()
    with torch.no_grad():
        cls_logits, box_deltas = head(feats)
        for level, x in enumerate(feats):
            y = x
            for conv, norm in zip(head.cls_convs.convs, head.cls_convs.norms[level]):
                y = F.relu(F.batch_norm(conv(y), norm.running_mean, norm.running_var,
                                        norm.weight, norm.bias, eps=norm.eps))
            assert torch.allclose(cls_logits[level], head.cls_logits(y), atol=1e-5)
    assert [t.shape[1] for t in cls_logits] == [9 * 3] * 5
    assert [t.shape[1] for t in box_deltas] == [9 * 4] * 5
    same = [feats[0][..., :2, :2]] * 5  # one map on every level: only the norms differ
    with torch.no_grad():
        outs = head(same)[0]
    assert not torch.allclose(outs[0], outs[1])


def test_loss_trains_shared_convs_from_every_level_and_each_levels_norms():
    head = _head().train()
    feats = _levels(batch=2)  # BN in training needs more than one value per channel
    samples = [make_sample([[10.0, 12.0, 50.0, 60.0]], [2], img_shape=(128, 128)),
               make_sample([[70.0, 20.0, 120.0, 90.0]], [0], img_shape=(128, 128))]
    empty = [make_sample(img_shape=(128, 128)) for _ in range(2)]
    losses = head.loss(feats, samples)
    assert all(torch.isfinite(v) for v in losses.values()) and losses["loss_bbox"] > 0
    sum(losses.values()).backward()
    assert all(c.weight.grad.abs().sum() > 0 for c in head.cls_convs.convs)
    # the focal loss covers every anchor: each level's classification norms learn
    assert all(n.weight.grad.abs().sum() > 0 for level in head.cls_convs.norms for n in level)
    reg_levels = [any(n.weight.grad is not None and n.weight.grad.abs().sum() > 0 for n in level)
                  for level in head.reg_convs.norms]
    assert any(reg_levels)  # the box loss reaches the levels with positive anchors
    empty_losses = head.loss(feats, empty)
    empty_losses = {k: v.detach() for k, v in empty_losses.items()}
    assert float(empty_losses["loss_bbox"]) == 0.0 and float(empty_losses["loss_cls"]) > 0


def test_num_ins_must_match_the_anchor_levels():
    with pytest.raises(ConfigError, match="num_ins=4 but the anchor generator has 5 levels"):
        _head(num_ins=4)
    assert _head(num_ins=5).num_ins == 5
    with pytest.raises(ConfigError, match="stacked_convs"):
        _head(stacked_convs=0)


def test_tiny_retinanet_with_sepbn_head_trains_predicts_and_keeps_the_fast_paths_outputs():
    cfg = tiny_retinanet_cfg(num_classes=2)
    cfg["bbox_head"] = dict(cfg["bbox_head"], type="RetinaSepBNHead")
    torch.manual_seed(0)
    model = MODELS.build(cfg)
    assert isinstance(model.bbox_head, RetinaHead)  # ONNX export and tools treat it as one
    batch = ImageBatch(images=rectangle_image((8, 12, 40, 44)).repeat(2, 1, 1, 1),
                       samples=[make_sample([[8, 12, 40, 44]], [1]) for _ in range(2)])
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    model.train()
    for _ in range(3):
        losses = model.loss(batch)
        optimizer.zero_grad()
        sum(losses.values()).backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        plain = model.predict(batch)
        fast = prepare_for_inference(copy.deepcopy(model)).predict(batch)
    for a, b in zip(plain, fast):
        assert torch.allclose(a.boxes, b.boxes, atol=1e-3) and torch.equal(a.labels, b.labels)


def test_nasfpn_recipe_uses_the_sepbn_head_with_batch_norm():
    cfg = load_config(RECIPE)
    head = cfg["model"]["bbox_head"]
    assert head["type"] == "RetinaSepBNHead"
    built = MODELS.build({**head, "num_classes": 80})
    assert isinstance(built.cls_convs.norms[4][3], nn.BatchNorm2d)
    assert built.cls_convs.convs[0].in_channels == 256 and len(built.cls_convs.convs) == 4
