"""RoI sampling (with GT added as proposals) and multi-level RoIAlign."""

import pytest
import torch
from torchvision.ops import MultiScaleRoIAlign, roi_align

from detbox.models.roi_heads import MultiLevelRoIExtractor, boxes_to_rois, map_rois_to_levels
from detbox.models.roi_heads.targets import sample_proposals
from detbox.models.task_modules import AssignResult, MaxIoUAssigner, RandomSampler
from detbox.structures import DetSample, Instances


def _sample(gt_boxes=None) -> DetSample:
    gt = (
        Instances.empty()
        if gt_boxes is None
        else Instances(
            boxes=torch.tensor(gt_boxes, dtype=torch.float32),
            labels=torch.zeros(len(gt_boxes), dtype=torch.int64),
        )
    )
    return DetSample(image_id=0, file_name="", ori_shape=(100, 100), img_shape=(100, 100), gt=gt)


def test_random_sampler_golden_counts():
    torch.manual_seed(0)
    matched = torch.cat(
        [
            torch.zeros(1000, dtype=torch.int64),  # 1000 positives
            torch.full((3000,), -1),
            torch.full((50,), -2),
        ]
    )
    sampler = RandomSampler(num=512, pos_fraction=0.25)
    pos, neg = sampler.sample(AssignResult(matched, torch.zeros(len(matched))))
    assert (pos.numel(), neg.numel()) == (128, 384)
    assert (matched[pos] >= 0).all() and (matched[neg] == -1).all()
    assert pos.unique().numel() == 128 and neg.unique().numel() == 384
    few = torch.cat([torch.zeros(10, dtype=torch.int64), torch.full((3000,), -1)])
    pos, neg = sampler.sample(AssignResult(few, torch.zeros(len(few))))
    assert (pos.numel(), neg.numel()) == (10, 502)  # negatives fill the minibatch


def test_gt_boxes_are_added_as_positive_proposals():
    torch.manual_seed(0)
    assigner = MaxIoUAssigner(
        pos_iou_thr=0.5,
        neg_iou_thr=0.5,
        min_pos_iou=0.5,
        allow_low_quality_matches=False,
        ignore_iof_thr=-1,
    )
    sampler = RandomSampler(num=8, pos_fraction=0.5, add_gt_as_proposals=True)
    # Proposals: far from the GT (negatives only) -> the GT itself is the only positive.
    proposals = Instances(
        boxes=torch.tensor([[60.0, 60, 90, 90]] * 20), labels=torch.zeros(20, dtype=torch.int64)
    )
    sample = _sample([[0.0, 0, 20, 20]])
    (res,) = sample_proposals(assigner, sampler, [proposals], [sample.gt], [sample])
    assert res.num_gts == 1 and res.num_pos == 1 and res.num_neg == 7
    assert torch.equal(res.pos_boxes, torch.tensor([[0.0, 0, 20, 20]]))
    assert res.pos_gt_inds.tolist() == [0]
    assert res.sampled_boxes.shape == (8, 4)
    # An image without GT samples negatives only and adds nothing.
    empty = _sample(None)
    (res,) = sample_proposals(assigner, sampler, [proposals], [empty.gt], [empty])
    assert (res.num_gts, res.num_pos, res.num_neg) == (0, 0, 8)


def test_roi_level_mapping_follows_box_scale():
    sides = torch.tensor([10.0, 111.0, 112.0, 223.0, 224.0, 447.0, 448.0, 2000.0])
    rois = torch.stack([torch.zeros(8), torch.zeros(8), torch.zeros(8), sides, sides], dim=1)
    assert map_rois_to_levels(rois, 4, finest_scale=56).tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    assert map_rois_to_levels(rois, 2, finest_scale=56).tolist() == [0, 0, 1, 1, 1, 1, 1, 1]


def test_single_level_extractor_is_plain_roi_align():
    torch.manual_seed(0)
    feat = torch.randn(2, 4, 10, 12)
    rois = torch.tensor([[0, 1.0, 2, 60, 70], [1, 10, 10, 100, 120]])
    extractor = MultiLevelRoIExtractor(output_size=7, featmap_strides=[16], sampling_ratio=2)
    expected = roi_align(feat, rois, (7, 7), 1 / 16, 2, aligned=True)
    assert torch.allclose(extractor([feat], rois), expected)


@pytest.mark.parametrize("output_size", [7, 14])
def test_multi_level_extractor_matches_torchvision(output_size):
    torch.manual_seed(0)
    feats = [torch.randn(2, 4, 128 // s, 160 // s) for s in (4, 8, 16, 32)]
    boxes = [
        torch.tensor([[0.0, 0, 30, 30], [5, 5, 125, 100], [10, 0, 160, 128]]),
        torch.tensor([[20.0, 30, 90, 60], [0, 0, 250, 250]]),
    ]
    ours = MultiLevelRoIExtractor(output_size=output_size, sampling_ratio=2, aligned=False)
    theirs = MultiScaleRoIAlign(["0", "1", "2", "3"], output_size, sampling_ratio=2)
    expected = theirs(dict(zip("0123", feats)), boxes, [(128, 160), (128, 160)])
    assert torch.allclose(
        ours(feats + [feats[-1][..., ::2, ::2]], boxes_to_rois(boxes)), expected, atol=1e-6
    )


def test_extractor_with_no_rois_returns_empty_features():
    extractor = MultiLevelRoIExtractor(output_size=7)
    feats = [torch.randn(1, 4, 32 // 2**i, 32 // 2**i, requires_grad=True) for i in range(4)]
    out = extractor(feats, torch.zeros(0, 5))
    assert out.shape == (0, 4, 7, 7)
    out.sum().backward()  # every level stays in the graph
    assert all(f.grad is not None for f in feats)
