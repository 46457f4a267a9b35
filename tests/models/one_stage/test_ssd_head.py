"""SSDHead: shapes, losses with hard negative mining, and SSD's per-class post-processing."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from detbox.models.dense_heads import (
    DetectionSettings,
    SSDHead,
    select_per_class_detections,
)
from detbox.registry import MODELS
from tests.models._helpers import make_sample

SIZES = [(8, 8), (4, 4)]  # a 64 x 64 input, steps 8 and 16
PRIORS = dict(type="SSDPriorGenerator", aspect_ratios=[[2], [2, 3]], scales=[0.2, 0.5, 0.9],
              steps=[8, 16])


def tiny_head(num_classes: int = 2, **overrides) -> SSDHead:
    torch.manual_seed(0)
    cfg = dict(type="SSDHead", num_classes=num_classes, in_channels=[8, 16],
               prior_generator=PRIORS)
    cfg.update(overrides)
    return MODELS.build(cfg)


def feats(batch: int = 1) -> list[torch.Tensor]:
    torch.manual_seed(1)
    return [torch.randn(batch, c, h, w) for c, (h, w) in zip((8, 16), SIZES)]


@pytest.mark.parametrize("depthwise", [False, True])
def test_forward_shapes(depthwise):
    head = tiny_head(num_classes=3, depthwise=depthwise).eval()
    cls_logits, box_deltas = head(feats(batch=2))
    assert [tuple(x.shape) for x in cls_logits] == [(2, 4 * 4, 8, 8), (2, 6 * 4, 4, 4)]
    assert [tuple(x.shape) for x in box_deltas] == [(2, 4 * 4, 8, 8), (2, 6 * 4, 4, 4)]


def test_empty_gt_gives_finite_zero_losses_in_the_graph():
    head = tiny_head()
    losses = head.loss(feats(), [make_sample()])
    assert set(losses) == {"loss_cls", "loss_bbox"}
    for value in losses.values():
        assert torch.isfinite(value) and value.item() == 0 and value.grad_fn is not None
    sum(losses.values()).backward()  # no positives, no mined negatives: still differentiable


def test_one_gt_loss_equals_positives_plus_three_hardest_negatives_per_positive():
    head = tiny_head()
    sample = make_sample([[16.0, 16, 48, 48]], [1])
    cls_logits, box_deltas = head(feats())
    losses = head.loss_by_outputs(cls_logits, box_deltas, [sample])
    # reference: assign with IoU, CE of every prior, the 3 * P largest background ones
    priors = torch.cat(head.priors(cls_logits, (64, 64)))
    matched = head.assigner.assign(priors, sample.gt.boxes).matched_gt
    positive = matched >= 0
    labels = torch.where(positive, torch.tensor(1), torch.tensor(2))
    logits = torch.cat([x.permute(0, 2, 3, 1).reshape(-1, 3) for x in cls_logits])
    ce = F.cross_entropy(logits, labels, reduction="none")
    num_pos = int(positive.sum())
    assert num_pos >= 1
    hardest = ce[~positive].sort(descending=True).values[:3 * num_pos]
    expected = (ce[positive].sum() + hardest.sum()) / num_pos
    torch.testing.assert_close(losses["loss_cls"], expected)
    assert losses["loss_bbox"].item() > 0
    sum(losses.values()).backward()
    assert head.cls_convs[0].weight.grad.abs().sum() > 0
    assert head.reg_convs[1].weight.grad.abs().sum() > 0


def test_the_best_prior_of_a_small_gt_is_forced_positive():
    head = tiny_head()
    cls_logits, _ = head(feats())
    priors = torch.cat(head.priors(cls_logits, (64, 64)))
    tiny = torch.tensor([[30.0, 30, 33, 33]])  # IoU far below 0.5 with every prior
    matched = head.assigner.assign(priors, tiny).matched_gt
    assert int((matched >= 0).sum()) >= 1


def test_per_class_selection_matches_a_class_loop():
    gen = torch.Generator().manual_seed(0)
    priors = torch.rand(50, 2, generator=gen) * 40
    priors = torch.cat([priors, priors + 10], dim=1)
    scores = torch.rand(50, 3, generator=gen).softmax(dim=1)
    deltas = torch.randn(50, 4, generator=gen) * 0.1
    decode = lambda p, d, shape: p + d  # noqa: E731
    settings = DetectionSettings(score_thr=0.3, nms_pre=7, nms_iou_thr=0.5, max_per_img=10)
    result = select_per_class_detections(priors, scores, deltas, decode, (64, 64), settings)
    boxes, kept_scores, labels = [], [], []
    for c in range(3):
        keep = torch.where(scores[:, c] > 0.3)[0]
        top = scores[keep, c].topk(min(7, keep.numel())).indices
        boxes.append(priors[keep[top]] + deltas[keep[top]])
        kept_scores.append(scores[keep[top], c])
        labels.append(torch.full((top.numel(),), c))
    from torchvision.ops import batched_nms
    boxes, kept_scores, labels = torch.cat(boxes), torch.cat(kept_scores), torch.cat(labels)
    keep = batched_nms(boxes, kept_scores, labels, 0.5)[:10]
    torch.testing.assert_close(result.scores, kept_scores[keep])
    assert torch.equal(result.labels, labels[keep])
    torch.testing.assert_close(result.boxes, boxes[keep])


def test_predict_on_empty_and_on_small_images():
    head = tiny_head(num_classes=3, max_per_img=15, score_thr=0.2).eval()
    results = head.predict(feats(batch=2), [make_sample(), make_sample(img_shape=(60, 50))])
    assert len(results) == 2
    for result in results:
        assert 0 < len(result) <= 15
        assert (result.scores[:-1] >= result.scores[1:]).all() and (result.scores > 0.2).all()
        assert result.labels.max() < 3
    assert results[1].boxes[:, 0::2].max() <= 50 and results[1].boxes[:, 1::2].max() <= 60
    nothing = tiny_head(score_thr=1.0).eval().predict(feats(), [make_sample()])[0]
    assert len(nothing) == 0 and nothing.boxes.shape == (0, 4)


def test_level_count_mismatch_is_an_error():
    with pytest.raises(ValueError, match="in_channels"):
        tiny_head(in_channels=[8])
