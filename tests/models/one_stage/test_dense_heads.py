"""FCOS, ATSS and GFL heads (FoveaBox where it is built): shapes, losses with empty and one GT,
prediction, and a tiny detector that learns a box in a few steps."""

from __future__ import annotations

import pytest
import torch

import detbox.models  # noqa: F401  (registers the heads and detectors)
from detbox.registry import MODELS
from detbox.structures import ImageBatch
from tests.models._helpers import make_sample, rectangle_batch, sgd_losses

from ._tiny import SIZES, detector_cfg, feats, head_cfg

NAMES = ["FCOSHead", "ATSSHead", "GFLHead", "FoveaHead"]
LOSS_KEYS = {
    "FCOSHead": {"loss_cls", "loss_bbox", "loss_centerness"},
    "ATSSHead": {"loss_cls", "loss_bbox", "loss_centerness"},
    "GFLHead": {"loss_cls", "loss_bbox", "loss_dfl"},
    "FoveaHead": {"loss_cls", "loss_bbox"},
}


def tiny_head(name: str, **overrides):
    torch.manual_seed(0)
    return MODELS.build(head_cfg(name, **overrides))


@pytest.mark.parametrize("name", NAMES)
def test_forward_shapes(name):
    head = tiny_head(name, num_classes=3)
    outputs = head(feats(batch=2))
    widths = {"FCOSHead": [3, 4, 1], "ATSSHead": [3, 4, 1], "GFLHead": [3, 4 * 9],
              "FoveaHead": [3, 4]}[name]
    assert len(outputs) == len(widths)
    for width, per_level in zip(widths, outputs):
        assert [tuple(x.shape) for x in per_level] == [(2, width, h, w) for h, w in SIZES]
    prior = torch.sigmoid(head.cls_logits.bias)
    torch.testing.assert_close(prior, torch.full_like(prior, 0.01))


@pytest.mark.parametrize("name", NAMES)
def test_empty_gt_loss_is_classification_only(name):
    head = tiny_head(name)
    losses = head.loss(feats(), [make_sample()])
    assert set(losses) == LOSS_KEYS[name]
    assert losses["loss_cls"].item() > 0
    for key in LOSS_KEYS[name] - {"loss_cls"}:
        assert losses[key].item() == 0 and losses[key].grad_fn is not None, key
    sum(losses.values()).backward()
    assert head.cls_logits.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("name", NAMES)
def test_one_gt_loss_and_gradients(name):
    head = tiny_head(name)
    losses = head.loss(feats(), [make_sample([[14.0, 10, 44, 50]], [1])])
    assert set(losses) == LOSS_KEYS[name]
    assert all(torch.isfinite(v) and v.item() > 0 for v in losses.values()), losses
    sum(losses.values()).backward()
    for param in (head.cls_convs[0].weight, head.reg_convs[0].weight, head.cls_logits.weight):
        assert param.grad is not None and param.grad.abs().sum() > 0


@pytest.mark.parametrize("name", NAMES)
def test_batch_mixes_empty_and_non_empty_images(name):
    head = tiny_head(name)
    samples = [make_sample(), make_sample([[14.0, 10, 44, 50]], [0])]
    losses = head.loss(feats(batch=2), samples)
    assert all(torch.isfinite(v) and v.item() > 0 for v in losses.values()), losses


@pytest.mark.parametrize("name", NAMES)
def test_predict_returns_sorted_clipped_instances(name):
    head = tiny_head(name, num_classes=3, max_per_img=20)
    torch.nn.init.zeros_(head.cls_logits.bias)  # scores near 0.5 (0.25 with centre-ness)
    results = head.predict(feats(batch=2), [make_sample(img_shape=(60, 50)), make_sample()])
    assert len(results) == 2
    first = results[0]
    assert 0 < len(first) <= 20
    assert torch.all(first.scores[:-1] >= first.scores[1:])
    assert first.boxes[:, 0::2].max() <= 50 and first.boxes[:, 1::2].max() <= 60
    assert first.boxes.min() >= 0 and first.labels.max() < 3


def test_fcos_options_change_the_regression():
    head = tiny_head("FCOSHead", norm_on_bbox=True, scale_per_level=False,
                     centerness_on_reg=True)
    assert head.scales is None
    _, distances, _ = head(feats())
    assert all(d.min() >= 0 for d in distances)
    level0 = torch.relu(head.bbox_reg(head.reg_convs(feats()[0]))) * 8
    torch.testing.assert_close(distances[0], level0)
    sqrt = tiny_head("FCOSHead", score_mode="sqrt")
    logits, ctr = torch.tensor([[0.0, -2.0]]), torch.tensor([[1.0]])
    torch.testing.assert_close(sqrt.scores(logits, ctr),
                               (logits.sigmoid() * ctr.sigmoid()).sqrt())


@pytest.mark.parametrize("name", NAMES)
def test_a_few_steps_of_a_tiny_detector_reduce_the_loss(name):
    torch.manual_seed(0)
    model = MODELS.build(detector_cfg(name)).train()
    totals = sgd_losses(model, rectangle_batch((14, 10, 44, 50)), steps=10, lr=0.005)
    assert min(totals[-3:]) < totals[0] * 0.9, totals


@pytest.mark.parametrize("name", NAMES)
def test_detector_predicts_nothing_or_valid_boxes_on_an_empty_image(name):
    torch.manual_seed(0)
    model = MODELS.build(detector_cfg(name)).eval()
    sample = make_sample(img_shape=(64, 64), ori_shape=(128, 96))
    with torch.no_grad():
        (result,) = model.predict(ImageBatch(images=torch.zeros(1, 3, 64, 64), samples=[sample]))
    assert result.boxes.shape[1] == 4 and len(result) == len(result.scores) == len(result.labels)
    if len(result):
        assert result.boxes[:, 0::2].max() <= 96 and result.boxes[:, 1::2].max() <= 128
