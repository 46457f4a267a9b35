"""Guided Anchoring: location targets, the approximating assigner and the bounded IoU loss
against direct references; GA-RetinaNet and GA-RPN heads end to end; the shipped configs."""

import math
from pathlib import Path

import pytest
import torch

from detbox.config import load_config
from detbox.models.dense_heads.anchor_guide import location_targets
from detbox.models.losses import BoundedIoULoss
from detbox.models.task_modules import AnchorGenerator, ApproxMaxIoUAssigner, MaxIoUAssigner
from detbox.registry import MODELS
from detbox.structures import ImageBatch

from .._helpers import (
    assert_predicts_inside_an_empty_image,
    make_sample,
    rectangle_batch,
    rectangle_image,
    sgd_losses,
)

CONFIGS = Path(__file__).resolve().parents[3] / "configs"


def reference_location_targets(gts, sizes, strides, base, r_ctr=0.4, r_ign=0.25):
    """Cell by cell: inside the (rounded, clamped) centre / ignore regions or not."""
    def region(box, ratio, lvl):
        b = [v / strides[lvl] for v in box]
        h, w = sizes[lvl]
        x1 = min(max(round((1 - ratio) * b[0] + ratio * b[2]), 0), w)
        y1 = min(max(round((1 - ratio) * b[1] + ratio * b[3]), 0), h)
        x2 = min(max(round(ratio * b[0] + (1 - ratio) * b[2]), 0), w)
        y2 = min(max(round(ratio * b[1] + (1 - ratio) * b[3]), 0), h)
        return lambda x, y: x1 <= x <= x2 and y1 <= y <= y2

    n = len(sizes)
    boxes = []
    for box in gts:
        s = math.sqrt((box[2] - box[0]) * (box[3] - box[1]))
        lvl = min(max(math.floor(math.log2(s) - math.log2(base * strides[0]) + 0.5), 0), n - 1)
        boxes.append((box, lvl))
    targets, weights = [], []
    for lvl, (h, w) in enumerate(sizes):
        t, wt = torch.zeros(h, w), torch.zeros(h, w)
        for y in range(h):
            for x in range(w):
                pos = any(region(b, r_ctr, lv)(x, y) for b, lv in boxes if lv == lvl)
                ign = any(region(b, r_ign, lv)(x, y) for b, lv in boxes if lv == lvl)
                near = any(region(b, r_ign, lvl)(x, y) for b, lv in boxes if abs(lv - lvl) == 1)
                t[y, x] = float(pos)
                wt[y, x] = 1.0 if pos else (0.0 if ign or near else 0.1)
        targets.append(t)
        weights.append(wt)
    return targets, weights


def test_location_targets_match_the_cell_by_cell_reference():
    gts = [[4.0, 6, 60, 40], [30, 30, 46, 50], [0, 0, 120, 100], [70, 10, 78, 20]]
    sizes, strides = [(16, 16), (8, 8), (4, 4), (2, 2)], [8, 16, 32, 64]
    targets, weights = location_targets([torch.tensor(gts)], sizes, strides, base_scale=2.0)
    ref_t, ref_w = reference_location_targets(gts, sizes, strides, base=2.0)
    for t, w, rt, rw in zip(targets, weights, ref_t, ref_w):
        torch.testing.assert_close(t[0], rt)
        torch.testing.assert_close(w[0], rw)
    assert sum(t.sum() for t in targets) > 0
    empty_t, empty_w = location_targets([torch.zeros(0, 4)], sizes, strides, 2.0)
    assert all(t.sum() == 0 and (w == 0.1).all() for t, w in zip(empty_t, empty_w))


def iou(a, b):
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def test_approx_assigner_uses_the_best_approximating_anchor():
    gen = AnchorGenerator(strides=[16], octave_base_scale=2, scales_per_octave=2)
    squares = AnchorGenerator(strides=[16], ratios=[1.0], scales=[2]).grid_anchors([(4, 4)])[0]
    approxes = gen.grid_anchors([(4, 4)])[0].reshape(16, -1, 4)
    gts = torch.tensor([[5.0, 10, 30, 60], [34, 20, 60, 34]])
    kwargs = {"pos_iou_thr": 0.5, "neg_iou_thr": 0.4, "min_pos_iou": 0.3}
    result = ApproxMaxIoUAssigner(**kwargs).assign_approx(squares, approxes, gts)
    ref_iou = torch.tensor([[max(iou(g, a) for a in loc) for loc in approxes.tolist()]
                            for g in gts.tolist()])
    torch.testing.assert_close(result.max_iou, ref_iou.max(0).values)
    expected = MaxIoUAssigner(**kwargs).assign_by_iou(ref_iou, torch.zeros(16, dtype=torch.bool))
    assert result.matched_gt.tolist() == expected.matched_gt.tolist()
    assert result.num_pos >= 2
    # One approximating anchor per location: the plain assigner's result.
    one = ApproxMaxIoUAssigner(**kwargs).assign_approx(squares, squares[:, None], gts)
    plain = MaxIoUAssigner(**kwargs).assign(squares, gts)
    assert one.matched_gt.tolist() == plain.matched_gt.tolist()


def test_bounded_iou_loss_by_hand():
    pred = torch.tensor([[0.0, 0, 10, 20], [5, 5, 15, 15]])
    target = torch.tensor([[1.0, 0, 11, 20], [0, 0, 40, 40]])
    loss = BoundedIoULoss(beta=0.2, eps=0.0, reduction="none")(pred, target)

    def smooth(v):
        return 0.5 * v * v / 0.2 if v < 0.2 else v - 0.1
    # box 1: dx = 1, w = 10 -> 1 - 8 / 12; dy = 0; same size
    # box 2: centres (10, 10) vs (20, 20): 1 - (40 - 20) / (40 + 20); sizes 10 vs 40: 1 - 1/4
    expected = [[smooth(1 - 8 / 12), 0, 0, 0],
                [smooth(1 - 20 / 60), smooth(1 - 20 / 60), smooth(0.75), smooth(0.75)]]
    torch.testing.assert_close(loss, torch.tensor(expected))


BACKBONE = {"type": "ResNet", "depth": 18, "out_indices": (1, 2, 3), "frozen_stages": -1,
            "norm": "GN", "norm_eval": False}


def tiny_ga_retinanet(seed=0):
    torch.manual_seed(seed)
    strides = [8, 16, 32, 64]
    return MODELS.build({
        "type": "RetinaNet", "backbone": BACKBONE,
        "neck": {"type": "FPN", "in_channels": [128, 256, 512], "out_channels": 16,
                 "num_outs": 4, "extra_convs": "input"},
        "bbox_head": {
            "type": "GARetinaHead", "num_classes": 2, "in_channels": 16, "feat_channels": 16,
            "stacked_convs": 1,
            "approx_anchor_generator": {"type": "AnchorGenerator", "strides": strides},
            "square_anchor_generator": {"type": "AnchorGenerator", "strides": strides,
                                        "ratios": [1.0], "scales": [4]},
        },
    })


def tiny_ga_rpn(seed=0):
    torch.manual_seed(seed)
    strides = [4, 8, 16, 32]
    return MODELS.build({
        "type": "RPN", "backbone": {**BACKBONE, "out_indices": (0, 1, 2, 3)},
        "neck": {"type": "FPN", "in_channels": [64, 128, 256, 512], "out_channels": 16,
                 "num_outs": 4, "extra_convs": None},
        "rpn_head": {
            "type": "GARPNHead", "in_channels": 16, "feat_channels": 16,
            "approx_anchor_generator": {"type": "AnchorGenerator", "strides": strides,
                                        "octave_base_scale": 4},
            "square_anchor_generator": {"type": "AnchorGenerator", "strides": strides,
                                        "ratios": [1.0], "scales": [4]},
        },
    })


def _head(model):
    return model.bbox_head if hasattr(model, "bbox_head") else model.rpn_head


@pytest.mark.parametrize("build", [tiny_ga_retinanet, tiny_ga_rpn], ids=["retina", "rpn"])
def test_shapes_and_guided_anchors_keep_the_square_centres(build):
    model = build().eval()
    cls_logits, box_deltas, loc, shapes = model(torch.randn(1, 3, 64, 64))
    assert loc[0].shape == (1, 1, *cls_logits[0].shape[-2:]) and shapes[1].shape[1] == 2
    assert box_deltas[0].shape[1] == 4
    guide = _head(model).guide
    squares = guide.squares(loc)[0]
    shape = torch.tensor([[0.5, -0.25]]).expand(squares.shape[0], 2)
    anchors = guide.guided_anchors(squares, shape)
    torch.testing.assert_close((anchors[:, :2] + anchors[:, 2:]) / 2,
                               (squares[:, :2] + squares[:, 2:]) / 2)
    scale = math.exp(0.5 * guide.anchor_coder.target_stds[2])
    torch.testing.assert_close(anchors[:, 2] - anchors[:, 0],
                               (squares[:, 2] - squares[:, 0]) * scale)


@pytest.mark.parametrize("build", [tiny_ga_retinanet, tiny_ga_rpn], ids=["retina", "rpn"])
def test_empty_and_one_gt_losses(build):
    model = build().train()
    head = _head(model)
    feats = model.extract_feat(rectangle_image((8, 8, 40, 40)))
    empty = head.loss(feats, [make_sample()])
    keys = sorted(empty)
    assert all(torch.isfinite(v) for v in empty.values())
    shape_key = [k for k in keys if k.endswith("shape")][0]
    box_key = [k for k in keys if k.endswith("bbox")][0]
    assert empty[shape_key].item() == 0.0 and empty[box_key].item() == 0.0
    assert empty[[k for k in keys if k.endswith("loc")][0]] > 0
    one = head.loss(feats, [make_sample([[8.0, 8, 40, 40]], [1])])
    assert all(torch.isfinite(v) and v > 0 for v in one.values()), one
    sum(one.values()).backward()
    assert head.guide.conv_shape.weight.grad.abs().sum() > 0
    assert head.guide.conv_loc.weight.grad.abs().sum() > 0
    assert head.adapt_cls.conv_adaption.weight.grad.abs().sum() > 0 if hasattr(
        head, "adapt_cls") else head.adapt.conv_adaption.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("build", [tiny_ga_retinanet, tiny_ga_rpn], ids=["retina", "rpn"])
def test_a_few_steps_reduce_the_loss_and_predict_on_an_empty_image(build):
    model = build().train()
    totals = sgd_losses(model, rectangle_batch((16, 16, 48, 48)), steps=8, lr=0.02)
    assert min(totals[-3:]) < totals[0] * 0.9, totals
    assert_predicts_inside_an_empty_image(model)


def test_the_location_filter_removes_every_anchor():
    model = tiny_ga_retinanet().eval()
    head = model.bbox_head
    torch.nn.init.zeros_(head.cls_logits.bias)  # every class scores 0.5 ...
    with torch.no_grad():
        (kept,) = model.predict(ImageBatch(images=torch.randn(1, 3, 64, 64),
                                           samples=[make_sample()]))
        torch.nn.init.constant_(head.guide.conv_loc.bias, -20.0)  # ... at no location
        (filtered,) = model.predict(ImageBatch(images=torch.randn(1, 3, 64, 64),
                                               samples=[make_sample()]))
    assert len(kept) > 0 and len(filtered) == 0


@pytest.mark.parametrize("name", ["ga_retinanet_r50_fpn_1x_coco.py", "ga_rpn_r50_fpn_1x_coco.py",
                                  "ga_retinanet_r18_fpn_synthetic.py",
                                  "ga_rpn_r18_fpn_synthetic.py"])
def test_shipped_configs_build_and_train(name):
    cfg = load_config(CONFIGS / "guided_anchoring" / name).model.to_dict()
    if "bbox_head" in cfg:
        cfg["bbox_head"]["num_classes"] = 3
    model = MODELS.build(cfg)
    batch = ImageBatch(images=rectangle_image((8, 8, 40, 56)),
                       samples=[make_sample([[8.0, 8, 40, 56]], [2])])
    losses = model.train().loss(batch)
    assert len(losses) == 4 and all(torch.isfinite(v) for v in losses.values())
