"""Golden values of the anchor-free task modules against straightforward loop references:
points, FCOS regression ranges / centre sampling, centre-ness targets and the ATSS selection."""

from __future__ import annotations

import math

import pytest
import torch
from torchvision.ops import box_iou

from detbox.models.dense_heads.centerness import centerness_targets
from detbox.models.task_modules import (
    BACKGROUND,
    IGNORED,
    AnchorGenerator,
    ATSSAssigner,
    DistancePointBoxCoder,
    FCOSAssigner,
    PointGenerator,
)

STRIDES = (8, 16, 32)
SIZES = [(8, 8), (4, 4), (2, 2)]  # a 64 x 64 image


def test_points_sit_at_cell_centres_or_corners():
    centre = PointGenerator(strides=(8, 16)).grid_points([(2, 3), (1, 2)])
    assert centre[0].tolist() == [[4, 4], [12, 4], [20, 4], [4, 12], [12, 12], [20, 12]]
    assert centre[1].tolist() == [[8, 8], [24, 8]]
    corner = PointGenerator(strides=(8, 16), offset=0.0).grid_points([(2, 3), (1, 2)])
    assert corner[1].tolist() == [[0, 0], [16, 0]]
    # torchvision's rule: a 3 x 3 level over a 40 px padded image steps by 40 // 3 = 13.
    tv = PointGenerator(strides=(8, 16), offset=0.0, strides_from_sizes=True)
    assert tv.grid_points([(5, 5), (3, 3)])[1][:3, 0].tolist() == [0, 13, 26]
    assert PointGenerator(strides=(8, 16)).point_strides(centre).tolist() == [8.0] * 6 + [16.0] * 2


def _fcos_reference(points, gts, level_of, strides, ranges, radius=None):
    """One point and one GT at a time: inside (centre region), range, then the smallest GT."""
    matched = []
    for i, (x, y) in enumerate(points.tolist()):
        level = level_of[i]
        best, best_area = BACKGROUND, math.inf
        for g, (x1, y1, x2, y2) in enumerate(gts.tolist()):
            dist = [x - x1, y - y1, x2 - x, y2 - y]
            if radius is None:
                inside = min(dist) > 0
            else:
                cx, cy, r = (x1 + x2) / 2, (y1 + y2) / 2, radius * strides[level]
                inside = (max(cx - r, x1) < x < min(cx + r, x2)
                          and max(cy - r, y1) < y < min(cy + r, y2))
            lo, hi = ranges[level]
            area = (x2 - x1) * (y2 - y1)
            if inside and lo <= max(dist) <= hi and area < best_area:
                best, best_area = g, area
        matched.append(best)
    return matched


@pytest.mark.parametrize("radius", [None, 1.5, 0.5])
def test_fcos_assigner_matches_the_reference(radius):
    ranges = ((-1, 16), (16, 32), (32, 1e8))
    level_points = PointGenerator(strides=STRIDES).grid_points(SIZES)
    points = torch.cat(level_points)
    level_of = sum(([lvl] * len(p) for lvl, p in enumerate(level_points)), [])
    gts = torch.tensor([[2.0, 3, 30, 22], [10, 10, 62, 60], [20, 18, 36, 34], [40, 0, 64, 14]])
    assigner = FCOSAssigner(regress_ranges=ranges, center_sampling=radius is not None,
                            center_sample_radius=radius or 1.5)
    result = assigner.assign(points, gts, num_level_points=[len(p) for p in level_points],
                             strides=STRIDES)
    expected = _fcos_reference(points, gts, level_of, STRIDES, ranges, radius)
    assert result.matched_gt.tolist() == expected
    assert len(set(expected) - {BACKGROUND}) >= 3  # the example exercises several GTs
    if radius == 0.5:  # a small centre region leaves fewer positives
        plain = FCOSAssigner(regress_ranges=ranges).assign(
            points, gts, num_level_points=[64, 16, 4], strides=STRIDES)
        assert result.pos_mask.sum() < plain.pos_mask.sum()


def test_fcos_assigner_levels_split_objects_by_size():
    points = torch.cat(PointGenerator(strides=STRIDES).grid_points(SIZES))
    assigner = FCOSAssigner(regress_ranges=((-1, 16), (16, 32), (32, 1e8)))
    small = assigner.assign(points, torch.tensor([[20.0, 20, 36, 36]]),
                            num_level_points=[64, 16, 4], strides=STRIDES)
    large = assigner.assign(points, torch.tensor([[0.0, 0, 64, 64]]),
                            num_level_points=[64, 16, 4], strides=STRIDES)
    assert small.pos_mask[:64].any() and not small.pos_mask[64:].any()
    assert not large.pos_mask[:64].any() and large.pos_mask[80:].any()


def test_fcos_assigner_empty_gt_and_ignored_regions():
    points = torch.cat(PointGenerator(strides=STRIDES).grid_points(SIZES))
    result = FCOSAssigner(regress_ranges=((-1, 16), (16, 32), (32, 1e8))).assign(
        points, torch.zeros(0, 4), torch.tensor([[0.0, 0, 20, 20]]),
        num_level_points=[64, 16, 4], strides=STRIDES)
    assert set(result.matched_gt.tolist()) == {BACKGROUND, IGNORED}
    # stride 8: (4, 4), (12, 4), (4, 12), (12, 12); stride 16: (8, 8); stride 32: (16, 16)
    assert (result.matched_gt == IGNORED).sum() == 6


def test_centerness_targets_golden_values():
    points = torch.tensor([[20.0, 20], [10, 30], [39, 21]])
    boxes = torch.tensor([[0.0, 0, 40, 40]]).expand(3, 4)
    distances = DistancePointBoxCoder().encode(points, boxes)
    assert distances[1].tolist() == [10, 30, 30, 10]
    expected = [math.sqrt(min(left, r) / max(left, r) * min(t, b) / max(t, b))
                for left, t, r, b in distances.tolist()]
    torch.testing.assert_close(centerness_targets(distances), torch.tensor(expected))
    assert centerness_targets(distances)[0] == 1.0
    decoded = DistancePointBoxCoder().decode(points, distances)
    torch.testing.assert_close(decoded, boxes)


def _atss_reference(anchors, gts, num_level, topk):
    """Per GT: closest ``topk`` anchors per level, IoU mean + std, centre inside; then per
    anchor the positive GT of highest IoU."""
    iou = box_iou(anchors, gts)
    centers = (anchors[:, :2] + anchors[:, 2:]) / 2
    positive = torch.zeros_like(iou, dtype=torch.bool)
    for g, box in enumerate(gts):
        gc = (box[:2] + box[2:]) / 2
        cands, start = [], 0
        for n in num_level:
            d = [(float(((centers[start + i] - gc) ** 2).sum().sqrt()), start + i)
                 for i in range(n)]
            cands += [i for _, i in sorted(d)[: min(topk, n)]]
            start += n
        values = torch.tensor([float(iou[i, g]) for i in cands])
        thr = values.mean() + values.std()
        for i in cands:
            cx, cy = centers[i].tolist()
            inside = box[0] < cx < box[2] and box[1] < cy < box[3]
            positive[i, g] = bool(iou[i, g] >= thr) and bool(inside)
    matched = []
    for i in range(len(anchors)):
        gs = [g for g in range(len(gts)) if positive[i, g]]
        matched.append(max(gs, key=lambda g: float(iou[i, g])) if gs else BACKGROUND)
    return matched


def test_atss_assigner_matches_the_reference():
    generator = AnchorGenerator(strides=STRIDES, ratios=(1.0,), octave_base_scale=4,
                                scales_per_octave=1)
    level_anchors = generator.grid_anchors(SIZES)
    anchors = torch.cat(level_anchors)
    # Centres off the anchor grid's symmetry lines, so that no two anchors tie in distance.
    gts = torch.tensor([[2.5, 3, 30, 22.2], [10.3, 10.1, 62, 60], [20.2, 18.6, 36.8, 34],
                        [44.1, 2.3, 63, 14.7]])
    num_level = [len(a) for a in level_anchors]
    result = ATSSAssigner(topk=3).assign(anchors, gts, num_level_anchors=num_level)
    expected = _atss_reference(anchors, gts, num_level, topk=3)
    assert result.matched_gt.tolist() == expected
    assert set(expected) - {BACKGROUND} == {0, 1, 2, 3}
    torch.testing.assert_close(result.max_iou, box_iou(anchors, gts).max(dim=1).values)


def test_atss_assigner_empty_gt_and_ignored():
    anchors = torch.cat(AnchorGenerator(strides=STRIDES, ratios=(1.0,), octave_base_scale=4,
                                        scales_per_octave=1).grid_anchors(SIZES))
    result = ATSSAssigner().assign(anchors, torch.zeros(0, 4), torch.tensor([[-100.0, -100, 200,
                                                                              200]]),
                                   num_level_anchors=[64, 16, 4])
    assert (result.matched_gt == IGNORED).all()
    result = ATSSAssigner().assign(anchors, torch.zeros(0, 4), num_level_anchors=[64, 16, 4])
    assert (result.matched_gt == BACKGROUND).all() and (result.max_iou == 0).all()


def _fovea_reference(points, gts, level_of, ranges, sigma):
    """Per point: GTs whose sqrt(area) suits its level and whose shrunk box holds it; the
    smallest of them."""
    matched = []
    for i, (x, y) in enumerate(points.tolist()):
        lo, hi = ranges[level_of[i]]
        best, best_area = BACKGROUND, math.inf
        for g, (x1, y1, x2, y2) in enumerate(gts.tolist()):
            w, h = x2 - x1, y2 - y1
            area = w * h
            fx1, fx2 = x1 + (1 - sigma) * w / 2, x1 + (1 + sigma) * w / 2
            fy1, fy2 = y1 + (1 - sigma) * h / 2, y1 + (1 + sigma) * h / 2
            if lo <= math.sqrt(area) <= hi and fx1 <= x <= fx2 and fy1 <= y <= fy2 \
                    and area < best_area:
                best, best_area = g, area
        matched.append(best)
    return matched


@pytest.mark.parametrize("sigma", [0.4, 0.8])
def test_fovea_assigner_matches_the_reference(sigma):
    from detbox.models.task_modules import FoveaAssigner

    ranges = ((1, 24), (12, 48), (24, 96))
    level_points = PointGenerator(strides=STRIDES).grid_points(SIZES)
    points = torch.cat(level_points)
    level_of = sum(([lvl] * len(p) for lvl, p in enumerate(level_points)), [])
    gts = torch.tensor([[2.0, 3, 30, 22], [10, 10, 62, 60], [20, 18, 36, 34], [40, 0, 64, 14]])
    result = FoveaAssigner(scale_ranges=ranges, sigma=sigma).assign(
        points, gts, num_level_points=[len(p) for p in level_points])
    expected = _fovea_reference(points, gts, level_of, ranges, sigma)
    assert result.matched_gt.tolist() == expected
    assert len(set(expected) - {BACKGROUND}) >= 3


def test_fovea_log_space_targets_round_trip():
    from detbox.models.dense_heads import FoveaHead

    head = FoveaHead(num_classes=1, in_channels=8, feat_channels=8, stacked_convs=0,
                     strides=STRIDES, base_edges=[16, 32, 64],
                     assigner={"type": "FoveaAssigner", "scale_ranges": [(1, 32), (16, 64),
                                                                         (32, 128)]})
    points = torch.tensor([[20.0, 28, 16]])
    box = torch.tensor([[4.0, 12, 52, 36]])
    # left 16, top 16, right 32, bottom 8 in units of the base edge 16: log 1, 1, 2, 0.5
    reg = torch.log(torch.tensor([[1.0, 1.0, 2.0, 0.5]]))
    torch.testing.assert_close(head._decode(points, reg, (64, 64)), box)
