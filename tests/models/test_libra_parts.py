"""Libra R-CNN's parts: balanced L1 loss, IoU-balanced negative sampling, the BFP neck."""

import math

import pytest
import torch
import torch.nn.functional as F

from detbox.errors import ConfigError
from detbox.models.losses import BalancedL1Loss
from detbox.models.necks import BFP, NeckSequence
from detbox.models.task_modules import AssignResult, IoUBalancedNegSampler, RandomSampler
from detbox.registry import MODELS


def reference_balanced_l1(x: float, alpha: float, gamma: float) -> float:
    """The paper's Eq. (9) for beta = 1: C makes the two parts meet at |x| = 1."""
    b = math.exp(gamma / alpha) - 1
    x = abs(x)
    inlier = lambda v: alpha / b * (b * v + 1) * math.log(b * v + 1) - alpha * v  # noqa: E731
    if x < 1:
        return inlier(x)
    c = inlier(1.0) - gamma
    return gamma * x + c


def test_balanced_l1_matches_the_paper():
    pred = torch.tensor([[0.0, 0.05, -0.3, 0.99], [1.0, -1.7, 2.5, 0.4]])
    target = torch.zeros_like(pred)
    loss = BalancedL1Loss(reduction="none")(pred, target)
    expected = torch.tensor([[reference_balanced_l1(v, 0.5, 1.5) for v in row]
                             for row in pred.tolist()])
    assert torch.allclose(loss, expected, atol=1e-6)
    assert loss[0, 0] == 0 and (loss.flatten()[1:] > 0).all()


def test_balanced_l1_gradient_and_reduction():
    x = torch.tensor([0.2, 3.0], requires_grad=True)
    BalancedL1Loss(reduction="sum")(x, torch.zeros(2)).backward()
    b = math.exp(3) - 1
    assert torch.allclose(x.grad, torch.tensor([0.5 * math.log(b * 0.2 + 1), 1.5]), atol=1e-5)
    loss = BalancedL1Loss(loss_weight=2.0)(torch.ones(3, 4), torch.zeros(3, 4), avg_factor=3)
    per_element = reference_balanced_l1(1.0, 0.5, 1.5)
    assert torch.allclose(loss, torch.tensor(2.0 * 12 * per_element / 3))
    empty = BalancedL1Loss()(torch.zeros(0, 4, requires_grad=True), torch.zeros(0, 4))
    assert empty.item() == 0 and empty.requires_grad
    with pytest.raises(ConfigError, match="alpha"):
        BalancedL1Loss(alpha=0.0)


def reference_bin_sizes(ious, num_bins, count):
    """How many negatives each IoU bin holds, and the per-bin quota, as Libra R-CNN bins them
    (floor 0, bins of equal width up to the largest IoU, the top value left for the fill)."""
    high = max(ious)
    width = high / num_bins
    sizes = [sum(1 for v in ious if b * width <= v < (b + 1) * width) for b in range(num_bins)]
    return sizes, count // num_bins


def _assign(ious, num_pos=0):
    matched = torch.cat([torch.zeros(num_pos, dtype=torch.int64),
                         torch.full((len(ious),), -1), torch.full((5,), -2)])
    max_iou = torch.cat([torch.full((num_pos,), 0.9), torch.tensor(ious), torch.full((5,), 0.4)])
    return AssignResult(matched, max_iou)


def _skewed_ious(seed=0):
    g = torch.Generator().manual_seed(seed)
    easy = (torch.rand(400, generator=g) * 0.1).tolist()
    middle = (0.1 + torch.rand(20, generator=g) * 0.2).tolist()
    hard = (0.3 + torch.rand(40, generator=g) * 0.19).tolist()
    return easy + middle + hard


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_iou_balanced_negatives_fill_each_bin_up_to_its_quota(seed):
    torch.manual_seed(seed)
    ious = _skewed_ious(seed)
    sampler = IoUBalancedNegSampler(num=128, pos_fraction=0.25)
    pos, neg = sampler.sample(_assign(ious, num_pos=10))
    assert pos.numel() == 10 and neg.numel() == 118 and neg.unique().numel() == 118
    neg_ious = [ious[i - 10] for i in neg.tolist()]
    assert all(i >= 10 and i < 10 + len(ious) for i in neg.tolist())  # never ignored boxes
    sizes, quota = reference_bin_sizes(ious, 3, 118)
    width = max(ious) / 3
    picked = [sum(1 for v in neg_ious if b * width <= v < (b + 1) * width) for b in range(3)]
    for have, size in zip(picked, sizes):
        assert have >= min(size, quota)
    sparse = [b for b, size in enumerate(sizes) if size <= quota]
    assert sparse, sizes  # the scenario has a bin with fewer negatives than its quota
    for b in sparse:
        assert picked[b] == sizes[b]  # taken whole
    # random sampling would pick ~ 400/460 easy negatives; balanced sampling far fewer
    assert picked[0] < 0.6 * 118


def test_iou_balanced_with_a_floor_set():
    torch.manual_seed(0)
    ious = [0.0] * 300 + (torch.rand(60) * 0.5 + 0.01).tolist()
    sampler = IoUBalancedNegSampler(num=100, pos_fraction=0.0, floor_thr=0.0,
                                    floor_fraction=0.5)
    _, neg = sampler.sample(_assign(ious))
    neg_ious = torch.tensor(ious)[neg]
    assert neg.numel() == 100 and neg.unique().numel() == 100
    assert int((neg_ious > 0).sum()) == 50 and int((neg_ious == 0).sum()) == 50


def test_iou_balanced_with_few_negatives_takes_them_all():
    sampler = IoUBalancedNegSampler(num=64, pos_fraction=0.25)
    pos, neg = sampler.sample(_assign([0.1, 0.2, 0.3], num_pos=2))
    assert sorted(neg.tolist()) == [2, 3, 4] and pos.numel() == 2
    assert isinstance(sampler, RandomSampler)
    with pytest.raises(ConfigError, match="num_bins"):
        IoUBalancedNegSampler(num=8, pos_fraction=0.25, num_bins=0)


def reference_bfp(feats, refine_level, refine=lambda x: x):
    size = feats[refine_level].shape[-2:]
    total = 0
    for i, x in enumerate(feats):
        total = total + (F.adaptive_max_pool2d(x, size) if i < refine_level
                         else F.interpolate(x, size=size, mode="nearest"))
    balanced = refine(total / len(feats))
    return [x + (F.interpolate(balanced, size=x.shape[-2:], mode="nearest") if i < refine_level
                 else F.adaptive_max_pool2d(balanced, x.shape[-2:]))
            for i, x in enumerate(feats)]


def _pyramid(channels=4, sizes=(32, 16, 8, 4, 2)):
    torch.manual_seed(0)
    return [torch.randn(2, channels, s, s + 1) for s in sizes]


def test_bfp_gathers_refines_and_scatters():
    feats = _pyramid()
    plain = BFP(in_channels=4, refine_type=None)(feats)
    expected = reference_bfp(feats, refine_level=2)
    assert [o.shape for o in plain] == [f.shape for f in feats]
    for a, b in zip(plain, expected):
        assert torch.allclose(a, b, atol=1e-6)
    # the non-local block starts as the identity (zero output conv), then refines
    bfp = BFP(in_channels=4)
    for a, b in zip(bfp(feats), expected):
        assert torch.allclose(a, b, atol=1e-6)
    torch.nn.init.normal_(bfp.refine.out.weight)
    refined = bfp(feats)
    for a, b in zip(refined, reference_bfp(feats, 2, bfp.refine)):
        assert torch.allclose(a, b, atol=1e-5)
    assert not torch.allclose(refined[0], expected[0])
    conv = BFP(in_channels=4, refine_type="conv", refine_level=1)
    for a, b in zip(conv(feats), reference_bfp(feats, 1, conv.refine)):
        assert torch.allclose(a, b, atol=1e-5)


def test_bfp_config_errors():
    with pytest.raises(ConfigError, match="refine_level"):
        BFP(in_channels=4, num_levels=3, refine_level=3)
    with pytest.raises(ConfigError, match="refine_type"):
        MODELS.build({"type": "BFP", "in_channels": 4, "refine_type": "nonlocal"})
    with pytest.raises(ValueError, match="5 levels"):
        BFP(in_channels=4)(_pyramid()[:4])


def test_neck_sequence_fills_the_first_necks_in_channels_and_keeps_keys():
    neck = MODELS.build({
        "type": "NeckSequence", "in_channels": [8, 16],
        "necks": [{"type": "FPN", "out_channels": 4, "num_outs": 3, "extra_convs": None},
                  {"type": "BFP", "in_channels": 4, "num_levels": 3, "refine_level": 1}],
    })
    assert isinstance(neck, NeckSequence) and neck.out_channels == 4
    assert neck[0].in_channels == [8, 16]
    keys = set(neck.state_dict())
    assert "0.lateral_convs.0.weight" in keys and "1.refine.theta.weight" in keys
    outs = neck([torch.randn(1, 8, 16, 16), torch.randn(1, 16, 8, 8)])
    assert [tuple(o.shape) for o in outs] == [(1, 4, 16, 16), (1, 4, 8, 8), (1, 4, 4, 4)]
    with pytest.raises(ConfigError, match="at least one"):
        NeckSequence(necks=[])


def reference_instance_balanced_quota(gt_counts, count):
    """Libra R-CNN's instance-balanced positives: every object gets round(count / objects) + 1."""
    return int(round(count / len(gt_counts))) + 1


def test_instance_balanced_positives():
    torch.manual_seed(0)
    # one object has 200 positive proposals, two have 5: random sampling would be ~95% the first
    gt_counts = [200, 5, 5]
    matched = torch.cat([torch.full((n,), g) for g, n in enumerate(gt_counts)]
                        + [torch.full((300,), -1)])
    sampler = IoUBalancedNegSampler(num=64, pos_fraction=0.5)
    pos, neg = sampler.sample(AssignResult(matched, torch.rand(len(matched)) * 0.5))
    assert pos.numel() == 32 and pos.unique().numel() == 32 and neg.numel() == 32
    per_object = torch.bincount(matched[pos], minlength=3).tolist()
    quota = reference_instance_balanced_quota(gt_counts, 32)  # 12
    assert per_object[1] == 5 and per_object[2] == 5  # small objects keep all their positives
    assert per_object[0] == 22 >= quota  # the big one its quota plus the random fill
    plain = IoUBalancedNegSampler(num=64, pos_fraction=0.5, instance_balanced_pos=False)
    pos, _ = plain.sample(AssignResult(matched, torch.rand(len(matched)) * 0.5))
    assert pos.numel() == 32 and torch.bincount(matched[pos], minlength=3)[0] > 22
