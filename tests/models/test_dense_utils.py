"""Shared dense-head pieces: flattening order, targets over priors, top-k / NMS selection.

The post-processing tests keep the heads' previous per-level loops as small references and
check that the shared functions give exactly the same detections and proposals.
"""

import functools

import torch
from torchvision.ops import batched_nms, remove_small_boxes

from detbox.models.dense_heads import (
    ProposalSettings,
    dense_targets,
    flatten_level,
    flatten_levels,
    topk_candidates,
)
from detbox.models.task_modules.assigners import AssignResult
from detbox.registry import MODELS, TASK_UTILS

from ._helpers import make_sample, tiny_retina_head_cfg

SIZES = [(8, 8), (4, 4), (2, 2)]


def _feats(batch: int = 2):
    torch.manual_seed(1)
    return [torch.randn(batch, 8, h, w) for h, w in SIZES]


def test_flatten_level_rows_follow_anchor_order():
    generator = TASK_UTILS.build({"type": "AnchorGenerator", "strides": [8, 16],
                                  "ratios": [0.5, 1.0, 2.0], "scales": [4]})
    sizes, num_anchors, width = [(3, 5), (2, 2)], generator.num_anchors, 4
    anchors = generator.grid_anchors(sizes, device="cpu")
    maps = []
    for (h, w), stride in zip(sizes, generator.strides):
        # channel a * width + k at (y, x) holds the centre of location (y, x) and the index a.
        ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
        level = torch.zeros(1, num_anchors * width, h, w)
        for a in range(num_anchors):
            level[0, a * width + 0] = (xs + 0.5) * stride
            level[0, a * width + 1] = (ys + 0.5) * stride
            level[0, a * width + 2] = a
        maps.append(level)
    flat = flatten_levels(maps, width)[0]
    priors = torch.cat(anchors)
    assert flat.shape == (priors.shape[0], width)
    centres = (priors[:, :2] + priors[:, 2:]) / 2
    offset = generator.center_offset
    assert torch.equal(flatten_level(maps[1], width)[0], flat[len(anchors[0]):])
    strides = torch.cat([torch.full((len(a),), float(s)) for a, s in zip(anchors, [8, 16])])
    torch.testing.assert_close(flat[:, :2] + (offset - 0.5) * strides[:, None], centres)
    base_index = torch.arange(num_anchors).repeat(sum(h * w for h, w in sizes)).float()
    assert torch.equal(flat[:, 2], base_index)


def test_dense_targets_match_the_retina_assignment():
    head = MODELS.build(tiny_retina_head_cfg(num_classes=3))
    priors = torch.cat(head.anchors(head(_feats(1))[0]))
    samples = [make_sample([[8.0, 8, 40, 40]], [2]), make_sample(ignored=[[0.0, 0, 64, 64]])]
    targets = dense_targets(priors, samples, head.assigner.assign, num_classes=3)
    assign = head.assigner.assign(priors, samples[0].gt.boxes, samples[0].ignored_boxes)
    positive = assign.matched_gt >= 0
    assert targets.labels.shape == targets.valid.shape == (2, priors.shape[0])
    assert torch.equal(targets.positive[0], positive) and not targets.positive[1].any()
    assert (targets.labels[0, positive] == 2).all() and (targets.labels[1] == 3).all()
    assert targets.pos_gt_boxes.shape == (int(positive.sum()), 4)
    assert targets.num_pos.item() == positive.sum().item()
    assert not targets.valid[1].all()  # the ignored region removes priors from the loss


def _inside_box_assign(points, gt_boxes, ignored_boxes, *, num_points):
    """A toy point assigner: a point belongs to the first GT box containing it."""
    assert points.shape == (num_points, 2)
    inside = ((points[:, None] >= gt_boxes[None, :, :2])
              & (points[:, None] <= gt_boxes[None, :, 2:])).all(-1)
    if gt_boxes.numel() == 0:
        none = torch.full((len(points),), -1)
        return AssignResult(matched_gt=none, max_iou=torch.zeros(len(points)))
    matched = torch.where(inside.any(1), inside.float().argmax(1), torch.tensor(-1))
    return AssignResult(matched_gt=matched, max_iou=inside.float().max(1).values)


def test_dense_targets_take_any_assigner_over_points():
    ys, xs = torch.meshgrid(torch.arange(4.0), torch.arange(4.0), indexing="ij")
    points = torch.stack([xs, ys], -1).reshape(-1, 2) * 16 + 8  # stride 16 centres
    assign = functools.partial(_inside_box_assign, num_points=16)
    targets = dense_targets(points, [make_sample([[0.0, 0, 30, 30]], [1]), make_sample()],
                            assign, num_classes=2)
    assert targets.positive[0].nonzero().flatten().tolist() == [0, 1, 4, 5]
    assert torch.equal(targets.pos_gt_boxes, torch.tensor([[0.0, 0, 30, 30]]).expand(4, 4))
    assert (targets.labels[1] == 2).all()


def test_topk_candidates_threshold_then_best_k():
    scores = torch.tensor([[0.125, 0.875], [0.625, 0.0625], [0.75, 0.8125]])
    top, prior_inds, labels = topk_candidates(scores, score_thr=0.5, k=3)
    assert top.tolist() == [0.875, 0.8125, 0.75]
    assert prior_inds.tolist() == [0, 2, 2] and labels.tolist() == [1, 1, 0]
    top, _, _ = topk_candidates(scores, score_thr=0.5, k=-1)
    assert sorted(top.tolist()) == [0.625, 0.75, 0.8125, 0.875]


def _old_retina_predict(head, cls_logits, box_deltas, samples):
    """RetinaHead.predict_by_outputs before the shared selection (reference)."""
    anchors = head.anchors(cls_logits)
    results = []
    for i, sample in enumerate(samples):
        boxes, scores, labels = [], [], []
        for level_anchors, logits, deltas in zip(anchors, cls_logits, box_deltas):
            level_scores = torch.sigmoid(
                logits[i].permute(1, 2, 0).reshape(-1, head.num_classes).float()).flatten()
            keep = level_scores > head.score_thr
            level_scores, flat = level_scores[keep], torch.where(keep)[0]
            level_scores, order = level_scores.topk(min(head.nms_pre, level_scores.numel()))
            flat = flat[order]
            idx = torch.div(flat, head.num_classes, rounding_mode="floor")
            level_deltas = deltas[i].permute(1, 2, 0).reshape(-1, 4)
            boxes.append(head.box_coder.decode(level_anchors[idx], level_deltas[idx].float(),
                                               max_shape=sample.img_shape))
            scores.append(level_scores)
            labels.append(flat % head.num_classes)
        boxes, scores, labels = torch.cat(boxes), torch.cat(scores), torch.cat(labels)
        keep = batched_nms(boxes, scores, labels, head.nms_iou_thr)[: head.max_per_img]
        results.append((boxes[keep], scores[keep], labels[keep]))
    return results


def test_retina_selection_equals_the_previous_code():
    torch.manual_seed(0)
    head = MODELS.build(tiny_retina_head_cfg(num_classes=4, score_thr=0.01, nms_pre=30,
                                             max_per_img=25)).eval()
    with torch.no_grad():
        for layer in (head.cls_logits, head.box_deltas):
            layer.weight.normal_(std=0.3)
        cls_logits, box_deltas = head(_feats())
    samples = [make_sample(img_shape=(60, 50)), make_sample()]
    new = head.predict_by_outputs(cls_logits, box_deltas, samples)
    old = _old_retina_predict(head, cls_logits, box_deltas, samples)
    for det, (boxes, scores, labels) in zip(new, old):
        assert len(det) > 5
        assert torch.equal(det.boxes, boxes) and torch.equal(det.labels, labels)
        # The sigmoid now runs on the kept candidates only; its vectorised kernel may round
        # the last bit differently on a shorter tensor.
        torch.testing.assert_close(det.scores, scores, rtol=0, atol=1e-6)


def _old_rpn_proposals(head, cls_logits, box_deltas, sample, settings):
    """RPNHead's per-image proposal code before the shared selection (reference)."""
    boxes, scores, levels = [], [], []
    for level, (anchors, logits, deltas) in enumerate(
            zip(head.anchors(cls_logits), cls_logits, box_deltas)):
        logits = logits[0].permute(1, 2, 0).reshape(-1).float()
        deltas = deltas[0].permute(1, 2, 0).reshape(-1, 4)
        if 0 < settings.nms_pre < logits.numel():
            logits, top = logits.topk(settings.nms_pre)
            anchors, deltas = anchors[top], deltas[top]
        boxes.append(head.box_coder.decode(anchors, deltas.float(), max_shape=sample.img_shape))
        scores.append(torch.sigmoid(logits))
        levels.append(torch.full_like(logits, level, dtype=torch.int64))
    boxes, scores, levels = torch.cat(boxes), torch.cat(scores), torch.cat(levels)
    keep = remove_small_boxes(boxes, settings.min_box_size)
    keep = keep[scores[keep] >= settings.score_thr]
    boxes, scores, levels = boxes[keep], scores[keep], levels[keep]
    keep = batched_nms(boxes, scores, levels, settings.nms_iou_thr)[: settings.max_per_img]
    return boxes[keep], scores[keep]


def test_rpn_selection_equals_the_previous_code():
    torch.manual_seed(0)
    head = MODELS.build({"type": "RPNHead", "in_channels": 8, "feat_channels": 8,
                         "anchor_generator": {"type": "AnchorGenerator", "strides": [8, 16, 32],
                                              "ratios": [0.5, 1.0, 2.0], "scales": [4]}})
    with torch.no_grad():
        head.box_deltas.weight.normal_(std=0.3)
        cls_logits, box_deltas = head(_feats(1))
    sample = make_sample()
    for settings in (ProposalSettings(nms_pre=40, max_per_img=50),
                     ProposalSettings(nms_pre=1000, min_box_size=4.0, score_thr=0.4)):
        (new,) = head.predict_by_outputs(cls_logits, box_deltas, [sample], settings)
        boxes, scores = _old_rpn_proposals(head, cls_logits, box_deltas, sample, settings)
        assert len(new) > 5
        assert torch.equal(new.boxes, boxes) and torch.equal(new.scores, scores)
        assert (new.labels == 0).all()
