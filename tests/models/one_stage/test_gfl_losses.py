"""Golden values of Quality Focal Loss, Distribution Focal Loss and the integral distances,
against the formulas of the GFL paper written out element by element."""

from __future__ import annotations

import math

import torch

from detbox.models.dense_heads.gfl_head import integral_distances
from detbox.models.losses import DistributionFocalLoss, IoULoss, QualityFocalLoss, aligned_iou


def _sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def test_quality_focal_loss_golden_values():
    logits = torch.tensor([[0.5, -1.0], [2.0, -3.0]])
    targets = torch.tensor([[0.8, 0.0], [0.0, 0.0]])
    expected = []
    for x_row, y_row in zip(logits.tolist(), targets.tolist()):
        row = []
        for x, y in zip(x_row, y_row):
            p = _sigmoid(x)
            bce = -(y * math.log(p) + (1 - y) * math.log(1 - p))
            row.append(bce * abs(y - p) ** 2)
        expected.append(row)
    loss = QualityFocalLoss(reduction="none")(logits, targets)
    torch.testing.assert_close(loss, torch.tensor(expected))
    total = QualityFocalLoss(loss_weight=0.5)(logits, targets, avg_factor=2.0)
    torch.testing.assert_close(total, torch.tensor(expected).sum() / 2 * 0.5)
    # A prediction equal to its soft target costs nothing beyond the (0-weighted) entropy.
    exact = torch.logit(torch.tensor([[0.3]]))
    assert QualityFocalLoss()(exact, torch.tensor([[0.3]])).item() < 1e-10


def test_distribution_focal_loss_golden_values():
    logits = torch.tensor([[0.1, 1.0, -0.5, 0.3], [2.0, 0.0, 0.0, 0.0]])
    targets = torch.tensor([1.25, 0.0])
    expected = []
    for row, y in zip(logits.tolist(), targets.tolist()):
        log_norm = math.log(sum(math.exp(v) for v in row))
        left = int(math.floor(y))
        value = (left + 1 - y) * (log_norm - row[left]) + (y - left) * (log_norm - row[left + 1])
        expected.append(value)
    loss = DistributionFocalLoss(reduction="none")(logits, targets)
    torch.testing.assert_close(loss, torch.tensor(expected))
    weighted = DistributionFocalLoss(loss_weight=0.25)(
        logits, targets, weight=torch.tensor([1.0, 0.5]), avg_factor=4.0)
    torch.testing.assert_close(weighted, torch.tensor(
        (expected[0] + 0.5 * expected[1]) / 4 * 0.25))


def test_integral_distances_are_the_distribution_means():
    reg_max = 4
    logits = torch.zeros(1, 4 * (reg_max + 1))
    logits[0, 2] = 50.0  # left: all mass on bin 2
    logits[0, 5 + 0] = logits[0, 5 + 1] = 50.0  # top: half on 0, half on 1
    distances = integral_distances(logits, reg_max)
    torch.testing.assert_close(distances[0, :2], torch.tensor([2.0, 0.5]))
    torch.testing.assert_close(distances[0, 2:], torch.tensor([2.0, 2.0]))  # uniform: the middle


def test_iou_loss_and_aligned_iou():
    pred = torch.tensor([[0.0, 0, 10, 10], [0, 0, 10, 10]])
    target = torch.tensor([[0.0, 0, 10, 10], [5, 0, 15, 10]])
    torch.testing.assert_close(aligned_iou(pred, target), torch.tensor([1.0, 1 / 3]))
    torch.testing.assert_close(IoULoss(reduction="none")(pred, target),
                               torch.tensor([0.0, math.log(3)]))
    torch.testing.assert_close(IoULoss(mode="linear", reduction="none")(pred, target),
                               torch.tensor([0.0, 2 / 3]))
