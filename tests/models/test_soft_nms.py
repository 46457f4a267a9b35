"""Soft-NMS against the paper's algorithm, and the ``nms`` switch of every NMS-using head."""

import math
import time

import pytest
import torch
from torchvision.ops import batched_nms

from detbox.errors import ConfigError, DetboxError
from detbox.models.dense_heads.dense_utils import ProposalSettings, nms_instances
from detbox.models.task_modules.nms import NMS, SoftNMS, batched_soft_nms, build_nms, soft_nms
from detbox.registry import MODELS

from ._helpers import make_sample, tiny_retina_head_cfg


def _iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def reference_soft_nms(boxes, scores, iou_thr, sigma, min_score, method):
    """Algorithm 1 of Bodla et al. (2017), one box at a time, in Python floats."""
    boxes, s = boxes.tolist(), scores.tolist()
    remaining = [i for i in range(len(boxes)) if s[i] >= min_score]
    picked, picked_scores = [], []
    while remaining:
        m = max(remaining, key=lambda i: s[i])
        picked.append(m)
        picked_scores.append(s[m])
        remaining.remove(m)
        for i in remaining:
            iou = _iou(boxes[m], boxes[i])
            if method == "linear":
                s[i] *= (1.0 - iou) if iou >= iou_thr else 1.0
            else:
                s[i] *= math.exp(-iou * iou / sigma)
        remaining = [i for i in remaining if s[i] >= min_score]
    return picked, picked_scores


def reference_batched(boxes, scores, groups, **kw):
    picked, picked_scores = [], []
    for g in groups.unique().tolist():
        inds = torch.nonzero(groups == g).flatten()
        p, ps = reference_soft_nms(boxes[inds], scores[inds], **kw)
        picked += inds[p].tolist()
        picked_scores += ps
    order = sorted(range(len(picked)), key=lambda i: -picked_scores[i])
    return [picked[i] for i in order], [picked_scores[i] for i in order]


def random_boxes(n: int, seed: int = 0, size: float = 100.0):
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g) * size
    wh = torch.rand(n, 2, generator=g) * size / 3 + 2
    return torch.cat([xy, xy + wh], dim=1), torch.rand(n, generator=g)


@pytest.mark.parametrize("method", ["linear", "gaussian"])
@pytest.mark.parametrize("seed", [0, 1])
def test_soft_nms_matches_the_papers_algorithm(method, seed):
    boxes, scores = random_boxes(80, seed)
    kw = {"iou_thr": 0.3, "sigma": 0.5, "min_score": 0.05, "method": method}
    keep, kept = soft_nms(boxes, scores, **kw)
    ref_keep, ref_scores = reference_soft_nms(boxes, scores, **kw)
    assert keep.tolist() == ref_keep
    assert torch.allclose(kept, torch.tensor(ref_scores), atol=1e-6)
    assert len(ref_keep) > 0 and (kept >= 0.05).all()


@pytest.mark.parametrize("method", ["linear", "gaussian"])
def test_batched_soft_nms_only_decays_within_a_group(method):
    boxes, scores = random_boxes(90, seed=3)
    groups = torch.arange(90) % 3
    kw = {"iou_thr": 0.3, "sigma": 0.5, "min_score": 1e-3, "method": method}
    keep, kept = batched_soft_nms(boxes, scores, groups, **kw)
    ref_keep, ref_scores = reference_batched(boxes, scores, groups, **kw)
    assert keep.tolist() == ref_keep
    assert torch.allclose(kept, torch.tensor(ref_scores), atol=1e-6)


def test_two_identical_boxes_in_two_groups_keep_their_scores():
    boxes = torch.tensor([[0.0, 0, 10, 10], [0.0, 0, 10, 10]])
    keep, kept = batched_soft_nms(boxes, torch.tensor([0.9, 0.8]), torch.tensor([0, 1]))
    assert keep.tolist() == [0, 1] and torch.allclose(kept, torch.tensor([0.9, 0.8]))
    keep, kept = batched_soft_nms(boxes, torch.tensor([0.9, 0.8]), torch.tensor([0, 0]))
    assert keep.tolist() == [0]  # linear: IoU 1 decays the duplicate to 0


def test_max_num_gives_the_prefix_of_the_full_result():
    boxes, scores = random_boxes(200, seed=5)
    full_keep, full_scores = soft_nms(boxes, scores, method="gaussian")
    keep, kept = soft_nms(boxes, scores, method="gaussian", max_num=25)
    assert torch.equal(keep, full_keep[:25]) and torch.equal(kept, full_scores[:25])


def test_empty_input_and_all_below_min_score():
    keep, kept = batched_soft_nms(torch.zeros(0, 4), torch.zeros(0), torch.zeros(0, dtype=int))
    assert keep.shape == (0,) and kept.shape == (0,)
    keep, _ = soft_nms(torch.tensor([[0.0, 0, 5, 5]]), torch.tensor([1e-4]))
    assert keep.numel() == 0


def test_default_suppressor_is_torchvision_batched_nms():
    boxes, scores = random_boxes(300, seed=7)
    groups = torch.arange(300) % 4
    suppress = build_nms(None, iou_thr=0.45)
    assert isinstance(suppress, NMS) and suppress.iou_thr == 0.45
    keep, kept = suppress(boxes, scores, groups, 50)
    expected = batched_nms(boxes, scores, groups, 0.45)[:50]
    assert torch.equal(keep, expected) and torch.equal(kept, scores[expected])
    plain = nms_instances(boxes, scores, groups, 0.45, 50)
    routed = nms_instances(boxes, scores, groups, 0.45, 50, nms=suppress)
    assert torch.equal(plain.boxes, routed.boxes) and torch.equal(plain.scores, routed.scores)


def test_config_names_and_errors():
    assert isinstance(build_nms({"type": "soft_nms", "method": "gaussian"}, iou_thr=0.5), SoftNMS)
    assert isinstance(build_nms({"type": "nms", "iou_thr": 0.6}, iou_thr=0.5), NMS)
    with pytest.raises(ConfigError, match="method"):
        build_nms({"type": "soft_nms", "method": "cubic"}, iou_thr=0.5)
    with pytest.raises(ConfigError, match="sigmaa"):
        build_nms({"type": "soft_nms", "sigmaa": 0.5}, iou_thr=0.5)
    with pytest.raises(ConfigError, match="sigma"):
        ProposalSettings.from_config({"nms": {"type": "soft_nms", "sigma": 0.0}}, "test")


def test_soft_nms_on_1000_boxes_is_fast_enough():
    boxes, scores = random_boxes(1000, seed=11, size=400.0)
    groups = torch.arange(1000) % 10
    soft_nms(boxes[:50], scores[:50])  # warm-up
    start = time.perf_counter()
    keep, _ = batched_soft_nms(boxes, scores, groups, method="gaussian", max_num=100)
    elapsed = time.perf_counter() - start
    assert len(keep) == 100
    assert elapsed < 2.0, f"{elapsed:.3f} s for 1000 boxes"


def test_retina_head_with_soft_nms_keeps_more_boxes_with_decayed_scores():
    torch.manual_seed(0)
    plain = MODELS.build(tiny_retina_head_cfg(score_thr=0.3, max_per_img=1000))
    soft = MODELS.build(tiny_retina_head_cfg(
        score_thr=0.3, max_per_img=1000,
        nms={"type": "soft_nms", "method": "gaussian", "min_score": 0.0}))
    torch.nn.init.normal_(plain.cls_logits.weight, std=0.3)
    torch.nn.init.zeros_(plain.cls_logits.bias)
    soft.load_state_dict(plain.state_dict())
    feats = [torch.randn(1, 8, s, s) for s in (8, 4, 2)]
    sample = make_sample(img_shape=(64, 64))
    with torch.no_grad():
        (a,) = plain.predict(feats, [sample])
        (b,) = soft.predict(feats, [sample])
    assert len(b) > len(a) > 0
    assert torch.equal(b.scores, b.scores.sort(descending=True).values)
    assert b.scores.max() == a.scores.max()  # the best box is never decayed
    assert b.scores.min() < 0.3  # ... the overlapping ones are


def test_two_stage_heads_accept_soft_nms_and_export_refuses_it():
    from detbox.deploy.onnx_graphs import _plain_nms_iou_thr

    head = MODELS.build({"type": "Shared2FCBBoxHead", "num_classes": 2, "in_channels": 4,
                         "roi_size": 2, "fc_channels": 8,
                         "nms": {"type": "soft_nms", "method": "linear"}})
    rois = torch.tensor([[0.0, 0, 0, 20, 20], [0.0, 1, 1, 21, 21], [0.0, 30, 30, 50, 50]])
    cls = torch.tensor([[4.0, 0, 0], [3.5, 0, 0], [0.0, 3, 0]])
    (dets,) = head.predict_by_outputs(cls, torch.zeros(3, 8), rois, [(64, 64)])
    assert dets.labels.tolist() == [0, 1, 0] and len(dets) == 3
    assert dets.scores[2] < torch.softmax(cls[1], 0)[0]  # the 0.82-IoU duplicate decayed
    with pytest.raises(DetboxError, match="plain NMS"):
        _plain_nms_iou_thr(head.nms, head.nms_iou_thr, "roi_head.bbox_head.nms")


def test_rpn_proposals_with_soft_nms():
    from .two_stage._tiny import tiny_rpn_head

    torch.manual_seed(0)
    soft_settings = {"nms_pre": 200, "max_per_img": 100,
                     "nms": {"type": "soft_nms", "method": "gaussian", "min_score": 0.0}}
    plain = MODELS.build(tiny_rpn_head())
    soft = MODELS.build(tiny_rpn_head(test_proposals=soft_settings))
    soft.load_state_dict(plain.state_dict())
    torch.nn.init.normal_(plain.cls_logits.weight, std=1.0)
    soft.cls_logits.weight.data.copy_(plain.cls_logits.weight)
    feats = [torch.randn(1, 16, s, s) for s in (16, 8, 4, 2, 1)]
    sample = make_sample(img_shape=(64, 64))
    with torch.no_grad():
        (a,) = plain.predict(feats, [sample])
        (b,) = soft.predict(feats, [sample])
    assert len(b) == len(a) == 100
    assert b.scores[-1] < 0.5 * a.scores[-1]  # overlapping proposals decayed, not dropped
    assert torch.equal(b.scores, b.scores.sort(descending=True).values)
    assert torch.isclose(b.scores[0], a.scores[0])
