"""Grid R-CNN: grid-point targets and decoding against the paper's definition, the head, the
classifier-only box head and the detector."""

import math

import pytest
import torch

from detbox.errors import ConfigError
from detbox.models.roi_heads import ConvFCBBoxHead, GridHead
from detbox.models.roi_heads.grid_head import grid_neighbours
from detbox.models.roi_heads.grid_roi_head import jitter_boxes
from detbox.models.task_modules import GridPointCoder
from detbox.structures import DetSample, ImageBatch
from tests.tiny_detector import two_stage_model

from ._tiny import build, rectangles_batch, train_steps
from ._tools_cli import check_tools


def tiny_grid_cfg(num_classes: int = 2) -> dict:
    cfg = two_stage_model("FasterRCNN")
    cfg["type"] = "GridRCNN"
    cfg["roi_head"] = {
        "type": "GridRoIHead",
        "bbox_head": {"type": "Shared2FCBBoxHead", "num_classes": num_classes,
                      "in_channels": 16, "fc_channels": 32, "with_reg": False},
        "grid_head": {"type": "GridHead", "in_channels": 16, "num_convs": 2,
                      "point_channels": 4, "norm_groups": 9},
        "sampler": {"type": "RandomSampler", "num": 64, "pos_fraction": 0.25,
                    "add_gt_as_proposals": True},
    }
    return cfg


def reference_targets(roi, gt, grid=3, size=56, radius=1):
    """The paper's targets, one pixel at a time: grid point (r, c) of the GT box, mapped into
    the twice-enlarged RoI's size x size map; a disk around it; each point's quarter crop."""
    w, h = roi[2] - roi[0], roi[3] - roi[1]
    ex1, ey1, ew, eh = roi[0] - w / 2, roi[1] - h / 2, 2 * w, 2 * h
    half = size // 2
    starts = [0] + [max(int((i / (grid - 1) - 0.25) * size), 0) for i in range(1, grid - 1)]
    starts.append(size - half)
    out = torch.zeros(grid * grid, half, half)
    if ew <= grid or eh <= grid:
        return out
    for j in range(grid * grid):
        r, c = divmod(j, grid)
        px = gt[0] + c / (grid - 1) * (gt[2] - gt[0])
        py = gt[1] + r / (grid - 1) * (gt[3] - gt[1])
        cx, cy = math.floor((px - ex1) / ew * size), math.floor((py - ey1) / eh * size)
        for y in range(half):
            for x in range(half):
                gx, gy = x + starts[c], y + starts[r]
                if (gx - cx) ** 2 + (gy - cy) ** 2 <= radius ** 2:
                    out[j, y, x] = 1.0
    return out


def test_sub_regions_and_neighbours():
    coder = GridPointCoder()
    assert coder.offsets.tolist() == [[0, 0], [14, 0], [28, 0], [0, 14], [14, 14], [28, 14],
                                      [0, 28], [14, 28], [28, 28]]
    assert grid_neighbours(3) == [[1, 3], [0, 2, 4], [1, 5], [0, 4, 6], [1, 3, 5, 7],
                                  [2, 4, 8], [3, 7], [4, 6, 8], [5, 7]]


def test_grid_targets_match_the_reference():
    rois = torch.tensor([[10.0, 20.0, 50.0, 70.0], [0.0, 0.0, 33.0, 21.0], [5.0, 5.0, 6.0, 6.0],
                         [30.0, 30.0, 90.0, 60.0]])
    gts = torch.tensor([[12.0, 18.0, 55.0, 66.0], [2.0, 1.0, 30.0, 25.0], [5.0, 5.0, 6.5, 6.5],
                        [20.0, 35.0, 80.0, 70.0]])
    targets = GridPointCoder().encode(rois, gts)
    assert targets.shape == (4, 9, 28, 28)
    for i in range(4):
        torch.testing.assert_close(targets[i], reference_targets(rois[i].tolist(),
                                                                 gts[i].tolist()))
    assert targets[2].sum() == 0  # too small to place points on
    assert (targets[0].flatten(1).sum(1) >= 1).all()  # every point has its disk


def test_decoding_reads_the_maxima_and_votes_per_edge():
    coder = GridPointCoder()
    roi = torch.tensor([[20.0, 10.0, 60.0, 90.0]])  # enlarged: x -0..80, y -30..130
    heat = torch.full((1, 9, 28, 28), -10.0)
    peaks = {}
    for j in range(9):
        x, y = 3 + 2 * j, 27 - 3 * (j % 4)
        heat[0, j, y, x] = 2.0 + 0.1 * j
        peaks[j] = (x + coder.offsets[j, 0].item(), y + coder.offsets[j, 1].item())
    boxes, scores = coder.decode(heat, roi)

    def to_abs(j):
        gx, gy = peaks[j]
        return (gx + 0.5) / 56 * 80 + 0.0, (gy + 0.5) / 56 * 160 - 30.0

    prob = [1 / (1 + math.exp(-(2.0 + 0.1 * j))) for j in range(9)]
    edges = {0: ([0, 3, 6], 0), 1: ([0, 1, 2], 1), 2: ([2, 5, 8], 0), 3: ([6, 7, 8], 1)}
    for side, (points, axis) in edges.items():
        expected = sum(to_abs(j)[axis] * prob[j] for j in points) / sum(prob[j] for j in points)
        assert boxes[0, side].item() == pytest.approx(expected, abs=1e-4)
    torch.testing.assert_close(scores[0], torch.tensor(prob))
    clipped, _ = coder.decode(heat, roi, img_shape=(50, 40))
    assert clipped[0, 2] <= 40 and clipped[0, 3] <= 50


def test_encode_then_decode_recovers_the_gt_box():
    coder = GridPointCoder(pos_radius=0)
    rois = torch.tensor([[10.0, 20.0, 50.0, 70.0], [30.0, 30.0, 90.0, 60.0]])
    gts = torch.tensor([[12.0, 18.0, 55.0, 66.0], [20.0, 35.0, 80.0, 70.0]])
    boxes, _ = coder.decode(coder.encode(rois, gts) * 20 - 10, rois)
    cell = torch.cat([rois[:, 2:] - rois[:, :2]] * 2, dim=1) * 2 / 56  # one heat-map pixel
    assert ((boxes - gts).abs() <= cell).all()


def test_grid_head_shapes_and_checks():
    head = GridHead(in_channels=8, num_convs=2, point_channels=4, norm_groups=9)
    fused, unfused = head(torch.randn(3, 8, 14, 14))
    assert fused.shape == unfused.shape == (3, 9, 28, 28)
    # Fresh maps start at probability 0.01 everywhere.
    assert torch.sigmoid(fused).mean().item() == pytest.approx(0.01, rel=0.05)
    with pytest.raises(ValueError, match="14x14"):
        head(torch.randn(1, 8, 7, 7))
    with pytest.raises(ConfigError, match="norm_groups"):
        GridHead(point_channels=10)
    plain = GridHead(in_channels=8, num_convs=2, point_channels=4, norm_groups=9,
                     with_fusion=False)
    assert sum(p.numel() for p in plain.parameters()) < sum(p.numel() for p in head.parameters())


def test_classifier_only_box_head():
    head = ConvFCBBoxHead(num_classes=3, in_channels=4, fc_channels=8, with_reg=False)
    assert head.fc_reg is None
    cls_score, bbox_pred = head(torch.randn(5, 4, 7, 7))
    assert cls_score.shape == (5, 4) and bbox_pred.shape == (5, 12) and not bbox_pred.any()
    labels = torch.tensor([0, 1, 3, 3, 2])
    losses = head.loss_by_outputs(cls_score, bbox_pred, torch.zeros(5, 5), labels,
                                  torch.zeros(5, 4))
    assert set(losses) == {"loss_cls"}
    rois = torch.tensor([[0, 1.0, 2.0, 30.0, 40.0]])
    (dets,) = head.predict_by_outputs(torch.tensor([[5.0, 0, 0, 0]]), torch.zeros(1, 12), rois,
                                      [(50, 50)])
    torch.testing.assert_close(dets.boxes, rois[:, 1:])  # the RoI is the box


def test_jitter_stays_within_its_amplitude():
    boxes = torch.tensor([[20.0, 20.0, 60.0, 40.0]]).repeat(200, 1)
    out = jitter_boxes(boxes, 0.15, (100, 100), torch.Generator().manual_seed(0))
    centres, wh = (out[:, :2] + out[:, 2:]) / 2, out[:, 2:] - out[:, :2]
    assert ((centres - torch.tensor([40.0, 30.0])).abs() <= torch.tensor([6.0, 3.0]) + 1e-4).all()
    assert ((wh / torch.tensor([40.0, 20.0]) - 1).abs() <= 0.15 + 1e-5).all()
    assert not torch.equal(out[0], out[1])
    assert jitter_boxes(torch.tensor([[0.0, 0.0, 10.0, 10.0]]), 0.5, (8, 8)).max() <= 8


def test_losses_with_empty_and_one_gt():
    model = build(tiny_grid_cfg()).train()
    empty = model.loss(rectangles_batch(with_gt=False))
    assert set(empty) == {"loss_rpn_cls", "loss_rpn_bbox", "loss_cls", "loss_grid"}
    assert all(torch.isfinite(v) for v in empty.values())
    assert empty["loss_grid"] == 0 and empty["loss_cls"] > 0
    empty["loss_grid"].backward()  # connected to the grid head, with zero gradients
    grads = [p.grad for p in model.roi_head.grid_head.parameters()]
    assert all(g is not None and not g.any() for g in grads)
    model.zero_grad()
    one = model.loss(rectangles_batch())
    assert one["loss_grid"] > 0 and torch.isfinite(one["loss_grid"])


def test_trains_and_predicts_with_grid_boxes():
    model = build(tiny_grid_cfg())
    history = train_steps(model, rectangles_batch(), steps=6)
    assert history[-1]["loss_grid"] < history[0]["loss_grid"]
    model.eval()
    batch = rectangles_batch(with_gt=False)
    with torch.no_grad():
        feats = model.extract_feat(batch.images)
        proposals = model.rpn_head.predict(feats, batch.samples)
        head = model.roi_head
        dets = head.predict(feats, proposals, batch.samples)
        plain = head.box_branch.predict(feats, proposals, [s.img_shape for s in batch.samples])
    for i, (det, box_only) in enumerate(zip(dets, plain)):
        assert len(det) == len(box_only) > 0
        torch.testing.assert_close(det.scores, box_only.scores)
        rois = torch.cat([torch.full((len(box_only), 1), float(i)), box_only.boxes], dim=1)
        fused, _ = head.grid_head(head.grid_roi_extractor(feats, rois))
        expected, _ = head.grid_head.coder.decode(fused, box_only.boxes, (64, 64))
        torch.testing.assert_close(det.boxes, expected)


def test_predict_on_an_empty_image():
    model = build(tiny_grid_cfg()).eval()
    sample = DetSample(image_id=0, file_name="", ori_shape=(64, 64), img_shape=(64, 64))
    with torch.no_grad():
        (result,) = model.predict(ImageBatch(images=torch.zeros(1, 3, 64, 64), samples=[sample]))
    assert result.boxes.shape[1] == 4 and len(result) <= 100
    model.roi_head.bbox_head.score_thr = 1.0  # no detection at all: the grid head is skipped
    with torch.no_grad():
        (result,) = model.predict(ImageBatch(images=torch.zeros(1, 3, 64, 64), samples=[sample]))
    assert len(result) == 0 and result.boxes.shape == (0, 4)


def test_tools_test_infer_flops_and_onnx_refusal(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("DETBOX_CACHE", str(tmp_path / "cache"))
    cfg = tiny_grid_cfg()
    del cfg["roi_head"]["bbox_head"]["num_classes"]
    check_tools(tmp_path, cfg, "GridRCNN", capsys)
