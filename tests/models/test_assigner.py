import pytest
import torch

from detbox.models.task_modules import MaxIoUAssigner, RandomSampler
from detbox.models.task_modules.assigners import AssignResult

GT = torch.tensor([[0.0, 0, 10, 10], [20, 20, 30, 30]])
BOXES = torch.tensor([
    [0.0, 0, 10, 10],    # IoU 1 with GT 0: positive
    [0, 0, 10, 20],      # IoU 0.5 with GT 0: positive (>= pos_iou_thr)
    [50, 50, 60, 60],    # no overlap: background
    [0, 0, 10, 22],      # IoU 0.4545: between the thresholds, ignored
    [20, 20, 40, 40],    # IoU 0.25 with GT 1, but GT 1's best box: low-quality positive
    [100, 100, 110, 110],  # inside the ignored region
])
IGNORED = torch.tensor([[95.0, 95, 120, 120]])


def assigner(**overrides) -> MaxIoUAssigner:
    cfg = {"pos_iou_thr": 0.5, "neg_iou_thr": 0.4, "min_pos_iou": 0.0}
    cfg.update(overrides)
    return MaxIoUAssigner(**cfg)


def test_hand_made_case():
    result = assigner().assign(BOXES, GT, IGNORED)
    assert result.matched_gt.tolist() == [0, 0, -1, -2, 1, -2]
    assert result.matched_gt.dtype == torch.int64
    torch.testing.assert_close(result.max_iou, torch.tensor([1.0, 0.5, 0.0, 100 / 220, 0.25, 0.0]))
    assert result.num_pos == 3
    assert result.neg_mask.tolist() == [False, False, True, False, False, False]


def test_low_quality_matches_can_be_disabled_or_bounded():
    assert assigner(allow_low_quality_matches=False).assign(BOXES, GT, IGNORED).matched_gt[4] == -1
    assert assigner(min_pos_iou=0.3).assign(BOXES, GT, IGNORED).matched_gt[4] == -1


def test_ignored_regions_can_be_disabled():
    result = assigner(ignore_iof_thr=-1).assign(BOXES, GT, IGNORED)
    assert result.matched_gt[5] == -1


def test_empty_gt_gives_background_except_ignored():
    result = assigner().assign(BOXES, torch.zeros(0, 4), IGNORED)
    assert result.matched_gt.tolist() == [-1, -1, -1, -1, -1, -2]
    assert torch.equal(result.max_iou, torch.zeros(6))


def test_no_boxes():
    result = assigner().assign(torch.zeros(0, 4), GT, IGNORED)
    assert result.matched_gt.shape == (0,) and result.max_iou.shape == (0,)


def test_negative_range_pair():
    result = assigner(neg_iou_thr=(0.1, 0.4)).assign(BOXES, GT)
    assert result.matched_gt.tolist() == [0, 0, -2, -2, 1, -2]


def test_low_quality_ties_all_match():
    gt = torch.tensor([[0.0, 0, 10, 10]])
    boxes = torch.tensor([[0.0, 0, 20, 10], [0, 0, 10, 20], [50, 50, 60, 60]])
    result = assigner(pos_iou_thr=0.9).assign(boxes, gt)  # both boxes tie at IoU 0.5
    assert result.matched_gt.tolist() == [0, 0, -1]


def test_box_claimed_by_two_gts_goes_to_the_higher_iou():
    gt = torch.tensor([[0.0, 0, 10, 12], [0, 0, 10, 10]])
    boxes = torch.tensor([[0.0, 0, 10, 11], [50, 50, 60, 60]])
    # IoU 110/120 with GT 0 and 100/110 with GT 1: both GTs' best box, GT 0 overlaps it more.
    result = assigner(pos_iou_thr=0.99).assign(boxes, gt)
    assert result.matched_gt.tolist() == [0, -1]
    result = assigner(pos_iou_thr=0.99).assign(boxes, gt.flip(0))
    assert result.matched_gt.tolist() == [1, -1]


def test_random_sampler_respects_fractions_and_bounds():
    torch.manual_seed(0)
    matched = torch.tensor([0] * 30 + [-1] * 100 + [-2] * 10)
    result = AssignResult(matched_gt=matched, max_iou=torch.zeros(140))
    pos, neg = RandomSampler(num=64, pos_fraction=0.25).sample(result)
    assert pos.numel() == 16 and neg.numel() == 48
    assert (matched[pos] >= 0).all() and (matched[neg] == -1).all()
    assert len(set(neg.tolist())) == 48
    pos, neg = RandomSampler(num=64, pos_fraction=0.25, neg_pos_ub=2).sample(result)
    assert pos.numel() == 16 and neg.numel() == 32
    few = AssignResult(matched_gt=torch.tensor([0, -1, -1]), max_iou=torch.zeros(3))
    pos, neg = RandomSampler(num=64, pos_fraction=0.5).sample(few)
    assert pos.tolist() == [0] and sorted(neg.tolist()) == [1, 2]


def test_sampler_rejects_bad_config():
    from detbox.errors import ConfigError

    with pytest.raises(ConfigError):
        RandomSampler(num=0, pos_fraction=0.5)
