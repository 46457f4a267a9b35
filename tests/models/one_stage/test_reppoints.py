"""RepPoints: point-set conversions, the point assigner against a sequential reference, the
head's shapes, losses and training, and the shipped configs."""

import math
from pathlib import Path

import pytest
import torch

from detbox.config import load_config
from detbox.models.dense_heads.reppoints_head import grid_points, points_to_boxes
from detbox.models.task_modules import PointAssigner
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


def test_points_to_boxes_against_direct_formulas():
    gen = torch.Generator().manual_seed(0)
    pts = torch.randn(5, 18, generator=gen) * 3
    for row, mm, partial in zip(pts.tolist(), points_to_boxes(pts, "minmax").tolist(),
                                points_to_boxes(pts, "partial_minmax").tolist()):
        ys, xs = row[0::2], row[1::2]
        assert mm == pytest.approx([min(xs), min(ys), max(xs), max(ys)])
        assert partial == pytest.approx([min(xs[:4]), min(ys[:4]), max(xs[:4]), max(ys[:4])])
    transfer = torch.tensor([0.2, -0.3])
    moment = points_to_boxes(pts, "moment", transfer)
    for row, box in zip(pts.tolist(), moment.tolist()):
        ys, xs = row[0::2], row[1::2]
        mx, my = sum(xs) / 9, sum(ys) / 9
        sx = math.sqrt(sum((x - mx) ** 2 for x in xs) / 8)
        sy = math.sqrt(sum((y - my) ** 2 for y in ys) / 8)
        hw, hh = sx * math.exp(0.2), sy * math.exp(-0.3)
        assert box == pytest.approx([mx - hw, my - hh, mx + hw, my + hh], rel=1e-5)


def reference_point_assign(points, gts, scale=4.0, pos_num=1):
    """GT by GT, as the paper's code: the nearest points on the GT's level, kept when nearer
    than what an earlier GT recorded."""
    lvls = [round(math.log2(s)) for s in points[:, 2].tolist()]
    matched, best = [-1] * len(points), [math.inf] * len(points)
    for g, (x1, y1, x2, y2) in enumerate(gts.tolist()):
        w, h = max(x2 - x1, 1e-6), max(y2 - y1, 1e-6)
        lvl = math.floor((math.log2(w / scale) + math.log2(h / scale)) / 2)
        lvl = min(max(lvl, min(lvls)), max(lvls))
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
        cands = [(math.hypot((px - cx) / w, (py - cy) / h), i)
                 for i, (px, py, _) in enumerate(points.tolist()) if lvls[i] == lvl]
        for d, i in sorted(cands)[:pos_num]:
            if d < best[i]:
                matched[i], best[i] = g, d
    return matched


@pytest.mark.parametrize("pos_num", [1, 3])
def test_point_assigner_matches_the_sequential_reference(pos_num):
    points = torch.cat(grid_points([(16, 16), (8, 8), (4, 4)], [8, 16, 32], "cpu"))
    gen = torch.Generator().manual_seed(pos_num)
    xy = torch.rand(6, 2, generator=gen) * 90
    wh = torch.rand(6, 2, generator=gen) * 100 + 4
    gts = torch.cat([xy, xy + wh], dim=1)
    gts = torch.cat([gts, gts[:1] + 0.5])  # two GTs competing for the same point
    result = PointAssigner(scale=4, pos_num=pos_num).assign(points, gts)
    assert result.matched_gt.tolist() == reference_point_assign(points, gts, 4.0, pos_num)
    assert result.num_pos >= 1
    empty = PointAssigner().assign(points, gts[:0])
    assert (empty.matched_gt == -1).all()


def test_grid_points_follow_the_location_order():
    (level,) = grid_points([(2, 3)], [16], "cpu")
    assert level.tolist() == [[0, 0, 16], [16, 0, 16], [32, 0, 16],
                              [0, 16, 16], [16, 16, 16], [32, 16, 16]]


def tiny_reppoints_cfg(transform="moment", num_classes=2):
    return {
        "type": "RepPointsDetector",
        "backbone": {"type": "ResNet", "depth": 18, "out_indices": (1, 2, 3),
                     "frozen_stages": -1, "norm": "GN", "norm_eval": False},
        "neck": {"type": "FPN", "in_channels": [128, 256, 512], "out_channels": 16,
                 "num_outs": 4, "extra_convs": "input"},
        "bbox_head": {"type": "RepPointsHead", "num_classes": num_classes, "in_channels": 16,
                      "feat_channels": 16, "point_feat_channels": 16, "stacked_convs": 1,
                      "strides": [8, 16, 32, 64], "transform": transform},
    }


def build(transform="moment", seed=0):
    torch.manual_seed(seed)
    return MODELS.build(tiny_reppoints_cfg(transform))


def test_forward_shapes_and_the_refined_points_start_from_the_init_points():
    model = build().eval()
    cls_logits, pts_init, pts_refine = model(torch.randn(2, 3, 64, 64))
    assert [tuple(x.shape) for x in cls_logits] == [(2, 2, 8, 8), (2, 2, 4, 4), (2, 2, 2, 2),
                                                     (2, 2, 1, 1)]
    assert pts_init[0].shape == pts_refine[0].shape == (2, 18, 8, 8)
    head = model.bbox_head
    torch.nn.init.zeros_(head.pts_refine_out.weight)
    torch.nn.init.zeros_(head.pts_refine_out.bias)
    _, pts_init, pts_refine = model(torch.randn(1, 3, 64, 64))
    torch.testing.assert_close(pts_refine[1], pts_init[1])


@pytest.mark.parametrize("transform", ["moment", "minmax", "partial_minmax"])
def test_empty_and_one_gt_losses(transform):
    model = build(transform).train()
    feats = model.extract_feat(rectangle_image((8, 8, 40, 40)))
    empty = model.bbox_head.loss(feats, [make_sample()])
    assert empty["loss_cls"] > 0
    assert empty["loss_pts_init"].item() == 0.0 and empty["loss_pts_refine"].item() == 0.0
    one = model.bbox_head.loss(feats, [make_sample([[8.0, 8, 40, 40]], [1])])
    assert all(torch.isfinite(v) for v in one.values())
    assert one["loss_pts_init"] > 0 and one["loss_pts_refine"] > 0
    sum(one.values()).backward()
    head = model.bbox_head
    assert head.pts_init_out.weight.grad.abs().sum() > 0
    assert head.pts_refine_out.weight.grad.abs().sum() > 0
    assert head.cls_conv.weight.grad.abs().sum() > 0
    if transform == "moment":
        assert head.moment_transfer.grad.abs().sum() > 0


def test_init_loss_by_hand_for_one_point():
    """The init loss of a single GT is smooth L1 between its point's box and the GT, both
    divided by 4 strides, times 0.5."""
    model = build("minmax").train()
    head = model.bbox_head
    feats = model.extract_feat(torch.zeros(1, 3, 64, 64))
    cls_logits, pts_init, pts_refine = head(feats)
    gt = torch.tensor([[20.0, 22, 44, 50]])  # sqrt(24 * 28) / 4 ~ 6.5 -> level 2 (stride 8)
    losses = head.loss_by_outputs(cls_logits, pts_init, pts_refine,
                                  [make_sample(gt.tolist(), [0])])
    # Nearest stride-8 point to the centre (32, 36): (32, 32), cell (x=4, y=4).
    pts = pts_init[0][0, :, 4, 4].detach()
    box = torch.stack([pts[1::2].min(), pts[0::2].min(), pts[1::2].max(), pts[0::2].max()])
    box = box * 8 + torch.tensor([32.0, 32, 32, 32])
    d = ((box - gt[0]) / 32).abs()
    expected = 0.5 * torch.where(d < 0.11, 0.5 * d**2 / 0.11, d - 0.055).sum()
    torch.testing.assert_close(losses["loss_pts_init"].detach(), expected)


def test_a_few_steps_reduce_the_loss_and_predict_on_an_empty_image():
    model = build().train()
    totals = sgd_losses(model, rectangle_batch((16, 16, 48, 48)), steps=10, lr=0.01)
    assert min(totals[-3:]) < totals[0] * 0.9, totals
    assert_predicts_inside_an_empty_image(model)


def test_bad_num_points_and_transform_are_errors():
    cfg = tiny_reppoints_cfg()
    cfg["bbox_head"]["num_points"] = 8
    with pytest.raises(ValueError, match="odd square"):
        MODELS.build(cfg)
    cfg = tiny_reppoints_cfg(transform="momentum")
    with pytest.raises(Exception, match="moment"):
        MODELS.build(cfg)


@pytest.mark.parametrize("name", ["reppoints_moment_r50_fpn_1x_coco.py",
                                  "reppoints_moment_r50_fpn_gn-neck+head_1x_coco.py",
                                  "reppoints_moment_r18_fpn_synthetic.py"])
def test_shipped_configs_build_and_train(name):
    model_cfg = load_config(CONFIGS / "reppoints" / name).model.to_dict()
    model_cfg["bbox_head"]["num_classes"] = 3
    model = MODELS.build(model_cfg)
    assert type(model.bbox_head).__name__ == "RepPointsHead"
    batch = ImageBatch(images=rectangle_image((8, 8, 40, 56)),
                       samples=[make_sample([[8.0, 8, 40, 56]], [2])])
    losses = model.train().loss(batch)
    assert all(torch.isfinite(v) and v > 0 for v in losses.values())
