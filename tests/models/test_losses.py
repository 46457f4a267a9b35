import functools
import math

import pytest
import torch
import torch.nn.functional as F
from torchvision.ops import generalized_box_iou

from detbox.errors import ConfigError
from detbox.models.losses import CrossEntropyLoss, FocalLoss, GIoULoss, L1Loss, SmoothL1Loss
from detbox.registry import MODELS


def direct_focal(logits, one_hot, alpha=0.25, gamma=2.0):
    p = torch.sigmoid(logits)
    p_t = torch.where(one_hot > 0, p, 1 - p)
    alpha_t = torch.where(one_hot > 0, torch.full_like(p, alpha), torch.full_like(p, 1 - alpha))
    return -alpha_t * (1 - p_t) ** gamma * torch.log(p_t)


def test_focal_loss_matches_the_formula():
    logits = torch.randn(6, 3, generator=torch.Generator().manual_seed(0)) * 3
    labels = torch.tensor([0, 2, 3, 3, 1, 3])  # 3 = background
    one_hot = F.one_hot(labels, 4)[:, :3].float()
    loss = FocalLoss()(logits, labels, avg_factor=2.0)
    torch.testing.assert_close(loss, direct_focal(logits, one_hot).sum() / 2.0)
    torch.testing.assert_close(FocalLoss()(logits, one_hot, avg_factor=2.0), loss)
    elementwise = FocalLoss(reduction="none", gamma=0.0, alpha=0.5)(logits, labels)
    torch.testing.assert_close(elementwise, direct_focal(logits, one_hot, alpha=0.5, gamma=0.0))


def test_focal_loss_weight_and_loss_weight():
    logits = torch.randn(4, 2, generator=torch.Generator().manual_seed(1))
    labels = torch.tensor([0, 1, 2, 2])
    weight = torch.tensor([1.0, 0.0, 1.0, 0.0])
    full = FocalLoss(reduction="none")(logits, labels)
    loss = FocalLoss(loss_weight=2.0, reduction="sum")(logits, labels, weight=weight)
    torch.testing.assert_close(loss, 2.0 * (full[0].sum() + full[2].sum()))


def test_smooth_l1_and_l1_hand_values():
    pred = torch.tensor([[0.5, 2.0, 0.0, -1.0]])
    target = torch.zeros(1, 4)
    expected = torch.tensor([[0.125, 1.5, 0.0, 0.5]])
    torch.testing.assert_close(SmoothL1Loss(beta=1.0, reduction="none")(pred, target), expected)
    small_beta = SmoothL1Loss(beta=1 / 9, reduction="sum")(pred, target)
    torch.testing.assert_close(small_beta, torch.tensor(0.5 - 1 / 18 + 2.0 - 1 / 18 + 1.0 - 1 / 18))
    torch.testing.assert_close(L1Loss()(pred, target), torch.tensor(3.5 / 4))
    torch.testing.assert_close(L1Loss()(pred, target, avg_factor=1.0), torch.tensor(3.5))


def test_empty_inputs_give_a_zero_that_keeps_the_graph():
    pred = torch.zeros(0, 4, requires_grad=True)
    for loss_fn in (L1Loss(), SmoothL1Loss(), GIoULoss()):
        loss = loss_fn(pred, torch.zeros(0, 4), avg_factor=1.0)
        assert loss.item() == 0.0 and loss.grad_fn is not None
    assert L1Loss()(pred, torch.zeros(0, 4)).item() == 0.0  # mean of nothing is 0, not NaN


def test_giou_loss():
    boxes = torch.tensor([[0.0, 0, 10, 10], [0, 0, 4, 4]])
    targets = torch.tensor([[0.0, 0, 10, 10], [6, 6, 10, 10]])
    loss = GIoULoss(reduction="none")(boxes, targets)
    expected = 1 - torch.diag(generalized_box_iou(boxes, targets))
    torch.testing.assert_close(loss, expected)
    assert loss[0].item() == pytest.approx(0.0) and loss[1].item() > 1.0
    weight = torch.tensor([[1.0] * 4, [0.5] * 4])
    weighted = GIoULoss(reduction="sum")(boxes, targets, weight=weight)
    torch.testing.assert_close(weighted, expected[0] + 0.5 * expected[1])


def test_cross_entropy_softmax_and_sigmoid():
    logits = torch.randn(5, 4, generator=torch.Generator().manual_seed(2))
    labels = torch.tensor([0, 3, 1, 3, 2])
    torch.testing.assert_close(CrossEntropyLoss()(logits, labels), F.cross_entropy(logits, labels))
    class_weight = [1.0, 2.0, 0.5, 1.0]
    weighted = CrossEntropyLoss(class_weight=class_weight, reduction="sum")(logits, labels)
    torch.testing.assert_close(
        weighted,
        F.cross_entropy(logits, labels, weight=torch.tensor(class_weight), reduction="sum"),
    )
    # Sigmoid over 3 classes, label 3 = background (all-zero target row).
    sigmoid = CrossEntropyLoss(use_sigmoid=True, reduction="sum")(logits[:, :3], labels)
    one_hot = F.one_hot(labels, 4)[:, :3].float()
    torch.testing.assert_close(
        sigmoid, F.binary_cross_entropy_with_logits(logits[:, :3], one_hot, reduction="sum")
    )
    masks = torch.randn(2, 7, 7)
    binary = CrossEntropyLoss(use_sigmoid=True)(masks, (masks > 0).float())
    torch.testing.assert_close(
        binary, F.binary_cross_entropy_with_logits(masks, (masks > 0).float())
    )


def test_bad_reduction_and_registry():
    with pytest.raises(ConfigError, match="reduction"):
        L1Loss(reduction="avg")
    loss = MODELS.build({"type": "SmoothL1Loss", "beta": 1 / 9, "loss_weight": 2.0})
    assert isinstance(loss, SmoothL1Loss) and loss.loss_weight == 2.0


@pytest.mark.parametrize("alpha, gamma", [(0.25, 2.0), (0.5, 0.0), (-1, 1.5)])
def test_label_focal_loss_values_and_gradients_match_the_formula(alpha, gamma):
    from detbox.models.losses.focal_loss import label_focal_loss

    gen = torch.Generator().manual_seed(2)
    logits = (torch.randn(40, 5, generator=gen, dtype=torch.float64) * 4).requires_grad_()
    labels = torch.randint(0, 6, (40,), generator=gen)  # 5 = background
    weight = torch.rand(40, generator=gen, dtype=torch.float64)
    one_hot = F.one_hot(labels, 6)[:, :5].double()
    ref_alpha = alpha if alpha >= 0 else 0.5  # direct_focal's alpha_t; -1 means no alpha
    expected = direct_focal(logits, one_hot, ref_alpha, gamma) * (1 if alpha >= 0 else 2)
    expected = expected * weight[:, None]
    for reduce in (True, False):
        out = label_focal_loss(logits, labels, alpha=alpha, gamma=gamma, weight=weight,
                               reduce=reduce)
        torch.testing.assert_close(out, expected.sum() if reduce else expected)
        fn = functools.partial(label_focal_loss, labels=labels, alpha=alpha, gamma=gamma,
                               weight=weight, reduce=reduce)
        assert torch.autograd.gradcheck(fn, (logits,))


def test_focal_loss_fused_path_equals_the_autograd_path_in_float32():
    gen = torch.Generator().manual_seed(3)
    logits = torch.randn(300, 80, generator=gen) * 3
    labels = torch.randint(0, 81, (300,), generator=gen)
    valid = torch.rand(300, generator=gen) > 0.2
    fused_in = logits.clone().requires_grad_()
    fused = FocalLoss()(fused_in, labels, weight=valid, avg_factor=7.0)
    plain_in = logits.clone().requires_grad_()
    plain = FocalLoss().elementwise(plain_in[valid], labels[valid]).sum() / 7.0
    torch.testing.assert_close(fused, plain)
    fused.backward()
    plain.backward()
    torch.testing.assert_close(fused_in.grad, plain_in.grad)
    assert fused_in.grad[~valid].abs().sum() == 0  # ignored rows get no gradient


def test_focal_loss_on_no_rows_and_on_background_only():
    empty = torch.zeros(0, 3, requires_grad=True)
    loss = FocalLoss()(empty, torch.zeros(0, dtype=torch.int64), avg_factor=1.0)
    assert loss.item() == 0.0 and loss.grad_fn is not None
    logits = torch.zeros(4, 3, requires_grad=True)
    background = FocalLoss(reduction="sum")(logits, torch.full((4,), 3))
    # sigmoid(0) = 0.5 for every entry: 12 * 0.75 * 0.5**2 * log(2)
    torch.testing.assert_close(background, torch.tensor(12 * 0.75 * 0.25 * math.log(2)))
    background.backward()
    assert (logits.grad > 0).all()  # negatives are pushed down
