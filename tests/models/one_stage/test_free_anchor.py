"""FreeAnchor: bag selection, saturated box probabilities and the bag losses against direct
references, and the head / detector end to end."""

import math
from pathlib import Path

import pytest
import torch

from detbox.config import load_config
from detbox.models.dense_heads.free_anchor_head import (
    mean_max,
    negative_bag_loss,
    positive_bag_loss,
    saturated_box_prob,
    select_bags,
)
from detbox.registry import MODELS
from detbox.structures import ImageBatch

from .._helpers import (
    assert_predicts_inside_an_empty_image,
    make_sample,
    rectangle_batch,
    rectangle_image,
    sgd_losses,
    tiny_retinanet_cfg,
)

CONFIGS = Path(__file__).resolve().parents[3] / "configs"


def iou(a, b):
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union


def random_boxes(n, gen, size=64.0):
    xy = torch.rand(n, 2, generator=gen) * size * 0.7
    wh = torch.rand(n, 2, generator=gen) * size * 0.3 + 4
    return torch.cat([xy, xy + wh], dim=1)


def test_bags_are_each_objects_best_overlapping_anchors():
    gen = torch.Generator().manual_seed(0)
    anchors, gts = random_boxes(30, gen), random_boxes(3, gen)
    bags = select_bags(anchors, gts, k=5)
    assert bags.shape == (3, 5)
    for g, bag in zip(gts.tolist(), bags.tolist()):
        ious = [iou(g, a) for a in anchors.tolist()]
        expected = sorted(range(30), key=lambda j: -ious[j])[:5]
        assert sorted(ious[j] for j in bag) == pytest.approx(sorted(ious[j] for j in expected))
    assert select_bags(anchors[:4], gts, k=50).shape == (3, 4)


def test_saturated_box_prob_matches_the_reference():
    gen = torch.Generator().manual_seed(1)
    preds, gts = random_boxes(25, gen), random_boxes(4, gen)
    preds[:4] = gts + 1.0  # some high overlaps
    labels = torch.tensor([0, 2, 0, 1])
    probs = saturated_box_prob(preds, gts, labels, num_classes=3, thr=0.6)
    expected = torch.zeros(25, 3)
    for box, label in zip(gts.tolist(), labels.tolist()):
        ious = [iou(box, p) for p in preds.tolist()]
        top = max(max(ious), 0.6 + 1e-12)
        for n, v in enumerate(ious):
            expected[n, label] = max(expected[n, label], min(max((v - 0.6) / (top - 0.6), 0), 1))
    torch.testing.assert_close(probs, expected)
    assert probs.max() == 1.0  # each object's best prediction saturates
    assert saturated_box_prob(preds, gts[:0], labels[:0], 3, 0.6).abs().sum() == 0


def test_bag_losses_match_the_formulas():
    cls = torch.tensor([[0.9, 0.1, 0.5], [0.2, 0.3, 0.05]])
    box = torch.tensor([[0.8, 0.9, 0.4], [0.7, 0.1, 1.0]])
    expected_pos = []
    for c_row, b_row in zip(cls.tolist(), box.tolist()):
        p = [c * b for c, b in zip(c_row, b_row)]
        w = [1 / (1 - x) for x in p]
        bag = sum(wi * pi for wi, pi in zip(w, p)) / sum(w)
        expected_pos.append(-math.log(bag))
    torch.testing.assert_close(positive_bag_loss(cls, box), torch.tensor(expected_pos))
    # mean-max lies between the mean and the max
    m = mean_max(cls * box)
    assert ((m >= (cls * box).mean(1)) & (m <= (cls * box).max(1).values)).all()
    neg = negative_bag_loss(cls, box, gamma=2.0)
    p = cls * (1 - box)
    torch.testing.assert_close(neg, p**2 * -torch.log(1 - p))


def tiny_free_anchor(seed=0):
    torch.manual_seed(seed)
    cfg = tiny_retinanet_cfg()
    cfg["bbox_head"]["type"] = "FreeAnchorRetinaHead"
    return MODELS.build(cfg)


def reference_losses(head, cls_logits, box_deltas, sample):
    """The paper's losses for one image written out with loops over objects and classes."""
    anchors = torch.cat(head.anchors(cls_logits))
    probs = torch.cat([x.permute(0, 2, 3, 1).reshape(-1, head.num_classes)
                       for x in cls_logits]).sigmoid()
    deltas = torch.cat([x.permute(0, 2, 3, 1).reshape(-1, 4) for x in box_deltas])
    gt_boxes, gt_labels = sample.gt.boxes, sample.gt.labels
    coder, k = head.box_coder, head.pre_anchor_topk
    pos = 0.0
    for box, label in zip(gt_boxes, gt_labels.tolist()):
        ious = [iou(box.tolist(), a) for a in anchors.tolist()]
        bag = sorted(range(len(ious)), key=lambda j: -ious[j])[:k]
        p = []
        for j in bag:
            target = coder.encode(anchors[j:j + 1], box[None])
            d = (deltas[j] - target[0]).abs()
            sl1 = torch.where(d < 0.11, 0.5 * d**2 / 0.11, d - 0.5 * 0.11).sum()
            p.append(probs[j, label] * torch.exp(-0.75 * sl1))
        p = torch.stack(p)
        w = 1 / (1 - p)
        pos = pos - torch.log((w * p).sum() / w.sum())
    pred = coder.decode(anchors, deltas.detach())
    box_prob = torch.zeros_like(probs)
    for box, label in zip(gt_boxes, gt_labels.tolist()):
        ious = torch.tensor([iou(box.tolist(), q) for q in pred.tolist()])
        top = max(float(ious.max()), 0.6 + 1e-12)
        box_prob[:, label] = torch.maximum(box_prob[:, label],
                                           ((ious - 0.6) / (top - 0.6)).clamp(0, 1))
    q = probs * (1 - box_prob)
    neg = (q**2 * -torch.log(1 - q)).sum()
    num = len(gt_boxes)
    return 0.5 * pos / num, 0.5 * neg / (num * k)


def test_head_losses_match_the_reference_on_a_tiny_example():
    model = tiny_free_anchor()
    head = model.bbox_head
    head.pre_anchor_topk = 7
    feats = model.extract_feat(rectangle_image((10, 12, 40, 50)))
    with torch.no_grad():
        cls_logits, box_deltas = head(feats)
        cls_logits = [x + torch.randn_like(x) for x in cls_logits]  # spread the probabilities
        box_deltas = [x + 0.3 * torch.randn_like(x) for x in box_deltas]
    sample = make_sample([[10.0, 12, 40, 50], [30, 5, 60, 25]], [1, 0])
    losses = head.loss_by_outputs(cls_logits, box_deltas, [sample])
    pos, neg = reference_losses(head, cls_logits, box_deltas, sample)
    torch.testing.assert_close(losses["loss_positive_bag"], pos, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(losses["loss_negative_bag"], neg, rtol=1e-4, atol=1e-7)


def test_empty_and_one_gt_losses():
    model = tiny_free_anchor().train()
    feats = model.extract_feat(torch.randn(1, 3, 64, 64))
    empty = model.bbox_head.loss(feats, [make_sample()])
    assert empty["loss_positive_bag"].item() == 0.0 and empty["loss_positive_bag"].grad_fn
    assert empty["loss_negative_bag"] > 0
    one = model.bbox_head.loss(feats, [make_sample([[8.0, 8, 40, 40]], [1])])
    assert all(torch.isfinite(v) and v > 0 for v in one.values())
    sum(one.values()).backward()
    head = model.bbox_head
    assert head.box_deltas.weight.grad.abs().sum() > 0
    assert head.cls_logits.weight.grad.abs().sum() > 0


def test_a_few_steps_reduce_the_loss_and_predict_on_an_empty_image():
    model = tiny_free_anchor().train()
    totals = sgd_losses(model, rectangle_batch((16, 16, 48, 48)), steps=10, lr=0.005,
                        clip=35.0)  # clipped as the recipe
    assert min(totals[-3:]) < totals[0] * 0.9, totals
    assert_predicts_inside_an_empty_image(model)


def test_unknown_key_is_a_config_error():
    cfg = tiny_retinanet_cfg()
    cfg["bbox_head"].update(type="FreeAnchorRetinaHead", pre_anchor_top_k=50)
    with pytest.raises(Exception, match="pre_anchor_topk"):
        MODELS.build(cfg)


@pytest.mark.parametrize("name", ["free_anchor/retinanet_free_anchor_r50_fpn_1x_coco.py",
                                  "free_anchor/retinanet_free_anchor_r18_fpn_synthetic.py"])
def test_shipped_configs_build_and_train(name):
    model_cfg = load_config(CONFIGS / name).model.to_dict()
    model_cfg["bbox_head"]["num_classes"] = 3
    model = MODELS.build(model_cfg)
    assert type(model.bbox_head).__name__ == "FreeAnchorRetinaHead"
    batch = ImageBatch(images=rectangle_image((8, 8, 40, 56)),
                       samples=[make_sample([[8.0, 8, 40, 56]], [2])])
    losses = model.train().loss(batch)
    assert all(torch.isfinite(v) and v > 0 for v in losses.values())
