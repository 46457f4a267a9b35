"""TridentNet: trident blocks, scale-aware branch samples, the detector's losses and merging."""

import copy
import math

import pytest
import torch
from torch import nn

from detbox.errors import ConfigError
from detbox.models.backbones import ResNet, TridentResNet, make_resnet_stage
from detbox.models.backbones.trident_resnet import trident_block_forward
from detbox.models.detectors.trident import merge_branch_detections
from detbox.models.inference_mode import prepare_for_inference
from detbox.models.task_modules.assigners import BACKGROUND, IGNORED
from detbox.models.task_modules.scale_ranges import (
    branch_samples,
    check_scale_ranges,
    in_scale_range,
    keep_in_range,
)
from detbox.structures import DetSample, ImageBatch, Instances

from ._tiny import build, rectangles_batch, tiny_c4_cfg, train_steps
from ._tools_cli import check_tools

PAPER_RANGES = ((0, 90), (30, 160), (90, -1))


def tiny_trident_cfg(**overrides) -> dict:
    """A box-only C4 detector on a TridentResNet-18; ranges sized for 64 px images."""
    cfg = tiny_c4_cfg()
    cfg["type"] = "TridentFasterRCNN"
    cfg["backbone"]["type"] = "TridentResNet"
    del cfg["roi_head"]["mask_head"]
    # res5 on every RoI of every branch is the cost: small RoIs, few of them.
    cfg["roi_head"]["roi_extractor"] = {"type": "MultiLevelRoIExtractor", "output_size": 6,
                                        "featmap_strides": (16,)}
    cfg["roi_head"]["bbox_head"]["roi_size"] = 3
    cfg["roi_head"]["sampler"]["num"] = 8
    cfg["rpn_head"]["train_proposals"] = {"nms_pre": 200, "max_per_img": 50}
    cfg["branch_ranges"] = [(0, 24), (16, 40), (32, -1)]
    for key, value in overrides.items():
        if key.startswith("backbone."):
            cfg["backbone"][key.split(".", 1)[1]] = value
        else:
            cfg[key] = value
    return cfg


def dilated_copy(module: nn.Module, dilation: int) -> nn.Module:
    """The reference: a copy whose 3x3 convs are rebuilt with the dilation (and padding)."""
    ref = copy.deepcopy(module)
    for m in ref.modules():
        if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3):
            m.dilation, m.padding = (dilation, dilation), (dilation, dilation)
    return ref


@pytest.mark.parametrize("depth", [18, 50])
@pytest.mark.parametrize("dilation", [1, 2, 3])
def test_trident_block_equals_the_block_with_dilated_convs(depth, dilation):
    torch.manual_seed(0)
    stage = make_resnet_stage(depth=depth, stage=2, norm="GN").eval()
    x = torch.randn(2, stage[0].conv1.in_channels, 12, 10)
    for block in stage:  # the first block strides and has a downsample branch
        expected = dilated_copy(block, dilation)(x)
        got = trident_block_forward(block, x, dilation)
        assert got.shape == expected.shape
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
        x = expected


def test_trident_resnet_branches_share_weights_and_are_branch_major():
    torch.manual_seed(0)
    trident = TridentResNet(depth=18, frozen_stages=-1, norm="GN", norm_eval=False)
    plain = ResNet(depth=18, out_indices=(2,), num_stages=3, frozen_stages=-1, norm="GN",
                   norm_eval=False)
    assert trident.state_dict().keys() == plain.state_dict().keys()  # ImageNet keys load
    plain.load_state_dict(trident.state_dict())
    x = torch.randn(2, 3, 64, 48)
    trident.train()
    out = trident(x)[0]
    assert out.shape == (6, 256, 4, 3)
    for k, dilation in enumerate((1, 2, 3)):
        reference = copy.deepcopy(plain)
        reference.layer3 = dilated_copy(plain.layer3, dilation)
        torch.testing.assert_close(out[2 * k:2 * k + 2], reference(x)[0], atol=1e-5, rtol=1e-5)
    trident.eval()
    assert trident.active_branches() == (1,)
    torch.testing.assert_close(trident(x)[0], out[2:4], atol=1e-5, rtol=1e-5)
    trident.test_branch_idx = -1
    assert trident.active_branches() == (0, 1, 2) and trident(x)[0].shape[0] == 6


def test_trident_resnet_runs_the_inference_fast_path():
    torch.manual_seed(0)
    trident = TridentResNet(depth=18, norm="BN", test_branch_idx=-1).eval()
    for m in trident.modules():  # non-trivial statistics, so folding changes the weights
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        expected = trident(x)[0]
        fast = prepare_for_inference(copy.deepcopy(trident))
        assert not any(isinstance(m, nn.BatchNorm2d) for m in fast.modules())
        torch.testing.assert_close(fast(x)[0], expected, atol=1e-4, rtol=1e-4)


def test_trident_resnet_checks_its_settings():
    with pytest.raises(ConfigError, match="last stage"):
        TridentResNet(depth=18, num_stages=4, out_indices=(2, 3))
    with pytest.raises(ConfigError, match="test_branch_idx"):
        TridentResNet(depth=18, test_branch_idx=3)
    with pytest.raises(ConfigError, match="dilations"):
        TridentResNet(depth=18, dilations=(1, 0, 2))


def _reference_in_range(box, scale_range) -> bool:
    w, h = max(box[2] - box[0], 0.0), max(box[3] - box[1], 0.0)
    scale = math.sqrt(w * h)
    lo, hi = scale_range
    return scale >= lo and (hi == -1 or scale <= hi)


BOXES = [[0, 0, 10, 10], [5, 5, 5, 30], [0, 0, 30, 30], [10, 10, 40, 50], [0, 0, 90, 90],
         [0, 0, 200, 50], [3, 4, 163, 164], [0, 0, 400, 300]]


def test_scale_range_membership_matches_the_definition():
    boxes = torch.tensor(BOXES, dtype=torch.float32)
    for scale_range in PAPER_RANGES:
        expected = [_reference_in_range(b, scale_range) for b in BOXES]
        assert in_scale_range(boxes, scale_range).tolist() == expected
    # Boundaries belong to the range: 30 (box 2), 90 (box 4) and 160 (box 6).
    membership = torch.stack([in_scale_range(boxes, r) for r in PAPER_RANGES], dim=1).tolist()
    assert membership[2] == [True, True, False]
    assert membership[4] == [True, True, True]
    assert membership[6] == [False, True, True]


def test_branch_samples_move_out_of_range_gt_to_ignored():
    boxes = torch.tensor(BOXES, dtype=torch.float32)
    gt = Instances(boxes=boxes, labels=torch.arange(len(BOXES)))
    old_ignored = torch.tensor([[1.0, 2.0, 3.0, 4.0]])
    samples = [DetSample(image_id=0, file_name="a", ori_shape=(500, 500), img_shape=(500, 500),
                         gt=gt, ignored_boxes=old_ignored),
               DetSample(image_id=1, file_name="b", ori_shape=(500, 500), img_shape=(500, 500))]
    out = branch_samples(samples, PAPER_RANGES)
    assert [s.image_id for s in out] == [0, 1, 0, 1, 0, 1]  # branch-major
    for k, scale_range in enumerate(PAPER_RANGES):
        sample = out[2 * k]
        keep = [i for i, b in enumerate(BOXES) if _reference_in_range(b, scale_range)]
        drop = [i for i, b in enumerate(BOXES) if not _reference_in_range(b, scale_range)]
        assert sample.gt.labels.tolist() == keep
        torch.testing.assert_close(sample.ignored_boxes, torch.cat([old_ignored, boxes[drop]]))
        assert out[2 * k + 1].gt is None and out[2 * k + 1].ignored_boxes.shape == (0, 4)
    assert samples[0].gt.boxes.shape[0] == len(BOXES)  # the inputs are left alone


def test_keep_in_range_filters_each_branch_by_its_own_range():
    props = Instances(boxes=torch.tensor([[0.0, 0, 20, 20], [0, 0, 100, 100]]),
                      labels=torch.zeros(2, dtype=torch.int64))
    kept = keep_in_range([props] * 4, [(0, 50), (50, -1)], batch_size=2)
    assert [k.boxes[:, 2].tolist() for k in kept] == [[20.0], [20.0], [100.0], [100.0]]


def test_scale_ranges_are_checked():
    assert check_scale_ranges([[0, 90], [30, 160], [90, -1]], 3) == (
        (0.0, 90.0), (30.0, 160.0), (90.0, -1.0))
    with pytest.raises(ConfigError, match="one scale range per trident branch"):
        check_scale_ranges(PAPER_RANGES[:2], 3)
    with pytest.raises(ConfigError, match="0 <= lo < hi"):
        check_scale_ranges([(0, 90), (160, 30), (90, -1)], 3)
    with pytest.raises(ConfigError, match="one scale range"):
        build(tiny_trident_cfg(branch_ranges=[(0, 24), (16, -1)]))
    cfg = tiny_trident_cfg()
    cfg["backbone"]["type"] = "ResNet"
    with pytest.raises(ConfigError, match="needs a TridentResNet"):
        build(cfg)


def test_losses_with_empty_and_one_gt():
    model = build(tiny_trident_cfg()).train()
    empty = model.loss(rectangles_batch(with_gt=False))
    assert set(empty) == {"loss_rpn_cls", "loss_rpn_bbox", "loss_cls", "loss_bbox"}
    assert all(torch.isfinite(v) for v in empty.values())
    assert empty["loss_cls"] > 0 and empty["loss_rpn_cls"] > 0
    assert empty["loss_bbox"] == 0 and empty["loss_rpn_bbox"] == 0
    one = model.loss(rectangles_batch())
    assert all(torch.isfinite(v) for v in one.values())
    assert one["loss_bbox"] > 0 and one["loss_rpn_bbox"] > 0


def test_objects_outside_every_range_are_ignored_not_background():
    batch = rectangles_batch()  # two 32x32 rectangles
    out_of_range = build(tiny_trident_cfg(branch_ranges=[(0, 8), (8, 16), (40, -1)])).train()
    losses = out_of_range.loss(batch)
    assert losses["loss_bbox"] == 0 and losses["loss_rpn_bbox"] == 0
    no_scale_aware = build(tiny_trident_cfg(branch_ranges=[(0, 8), (8, 16), (40, -1)],
                                            scale_aware=False)).train()
    assert no_scale_aware.loss(batch)["loss_bbox"] > 0


def test_out_of_range_objects_are_ignored_regions_for_rpn_and_roi_assigners():
    model = build(tiny_trident_cfg(ignore_iof_thr=0.6))
    obj = torch.tensor([[10.0, 10.0, 60.0, 60.0]])  # out of a branch's range: ignored region
    inside = torch.tensor([[20.0, 20.0, 40.0, 40.0], [12.0, 12.0, 58.0, 58.0]])
    astride = torch.tensor([[40.0, 40.0, 80.0, 80.0]])  # a quarter inside: still background
    boxes = torch.cat([inside, astride])
    for assigner in (model.rpn_head.assigner, model.roi_head.assigner):
        assert assigner.ignore_iof_thr == 0.6
        matched = assigner.assign(boxes, torch.zeros(0, 4), obj).matched_gt
        assert matched.tolist() == [IGNORED, IGNORED, BACKGROUND]
    plain = build(tiny_trident_cfg(scale_aware=False))
    assert plain.rpn_head.assigner.ignore_iof_thr <= 0  # the heads' own setting is kept


def test_trains_and_predicts_on_an_empty_image():
    model = build(tiny_trident_cfg())
    history = train_steps(model, rectangles_batch(), steps=4)
    total = [sum(h.values()) for h in history]
    assert total[-1] < total[0]
    images = torch.zeros(1, 3, 64, 64)
    sample = DetSample(image_id=0, file_name="", ori_shape=(128, 128), img_shape=(64, 64),
                       scale_factor=(0.5, 0.5))
    model.eval()
    for test_branch_idx in (1, -1):
        model.backbone.test_branch_idx = test_branch_idx
        with torch.no_grad():
            (result,) = model.predict(ImageBatch(images=images, samples=[sample]))
        assert result.boxes.shape[1] == 4 and len(result) <= 100
        assert result.boxes.numel() == 0 or result.boxes.max() <= 128
        outputs = model(images)
        assert len(outputs["proposals"]) == len(model.backbone.active_branches())


def _reference_nms(boxes, scores, labels, thr):
    order = sorted(range(len(scores)), key=lambda i: -scores[i])
    kept = []
    for i in order:
        if all(labels[i] != labels[j] or _iou(boxes[i], boxes[j]) <= thr for j in kept):
            kept.append(i)
    return kept


def _iou(a, b):
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    area = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / area


def test_merging_branches_is_class_wise_nms_over_the_union():
    generator = torch.Generator().manual_seed(0)
    dets = []
    for _ in range(3 * 2):  # 3 branches x 2 images
        xy = torch.rand(12, 2, generator=generator) * 40
        wh = torch.rand(12, 2, generator=generator) * 30 + 5
        dets.append(Instances(boxes=torch.cat([xy, xy + wh], dim=1),
                              labels=torch.randint(0, 2, (12,), generator=generator),
                              scores=torch.rand(12, generator=generator)))
    merged = merge_branch_detections(dets, num_branches=3, iou_thr=0.5, max_per_img=20)
    for i in range(2):
        union = Instances.cat([dets[k * 2 + i] for k in range(3)])
        keep = _reference_nms(union.boxes.tolist(), union.scores.tolist(),
                              union.labels.tolist(), 0.5)[:20]
        torch.testing.assert_close(merged[i].boxes, union.boxes[keep])
        assert merged[i].scores.tolist() == sorted(merged[i].scores.tolist(), reverse=True)


def test_tools_test_infer_flops_and_onnx_refusal(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("DETBOX_CACHE", str(tmp_path / "cache"))
    cfg = tiny_trident_cfg()
    del cfg["roi_head"]["bbox_head"]["num_classes"]
    check_tools(tmp_path, cfg, "TridentFasterRCNN", capsys)


def test_testing_with_all_branches_merges_each_branch_in_its_range():
    model = build(tiny_trident_cfg()).eval()
    batch = rectangles_batch(with_gt=False)  # scale_factor 1: image and original coordinates
    single = []
    with torch.no_grad():
        for k in range(3):
            model.backbone.test_branch_idx = k
            single.append(model.predict(batch))
        model.backbone.test_branch_idx = -1
        merged = model.predict(batch)
    for i in range(2):
        parts = [single[k][i][in_scale_range(single[k][i].boxes, model.branch_ranges[k])]
                 for k in range(3)]
        union = Instances.cat(parts)
        keep = _reference_nms(union.boxes.tolist(), union.scores.tolist(),
                              union.labels.tolist(), 0.5)[:100]
        assert len(merged[i]) == len(keep) > 0
        torch.testing.assert_close(merged[i].boxes, union.boxes[keep], atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(merged[i].scores, union.scores[keep], atol=1e-5, rtol=1e-5)
