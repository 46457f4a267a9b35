"""hard_negative_mask against a per-image sort written out in the test."""

from __future__ import annotations

import torch

from detbox.models.task_modules import hard_negative_mask


def _reference(loss, positive, negative, ratio):
    mask = torch.zeros_like(positive)
    for i in range(loss.shape[0]):
        budget = min(int(positive[i].sum() * ratio), int(negative[i].sum()))
        candidates = sorted((-float(loss[i, j]), j) for j in range(loss.shape[1]) if negative[i, j])
        for _, j in candidates[:budget]:
            mask[i, j] = True
    return mask


def test_golden_values_on_a_small_batch():
    loss = torch.tensor([[0.1, 0.9, 0.5, 0.7, 0.3, 0.8],
                         [0.6, 0.2, 0.4, 0.1, 0.9, 0.3]])
    positive = torch.tensor([[1, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0]], dtype=torch.bool)
    negative = ~positive
    mask = hard_negative_mask(loss, positive, negative, 3.0)
    # image 0: one positive -> the three hardest negatives (0.9, 0.8, 0.7); image 1: none
    expected = torch.tensor([[0, 1, 0, 1, 0, 1], [0, 0, 0, 0, 0, 0]], dtype=torch.bool)
    assert torch.equal(mask, expected)


def test_matches_the_reference_on_random_inputs_with_ignored_priors():
    gen = torch.Generator().manual_seed(0)
    loss = torch.rand(4, 50, generator=gen)
    positive = torch.rand(4, 50, generator=gen) < 0.1
    ignored = torch.rand(4, 50, generator=gen) < 0.2
    negative = ~positive & ~ignored
    for ratio in (1.0, 3.0, 100.0):
        mask = hard_negative_mask(loss, positive, negative, ratio)
        assert torch.equal(mask, _reference(loss, positive, negative, ratio))
        assert not (mask & (positive | ignored)).any()


def test_ratio_larger_than_the_negatives_keeps_all_of_them():
    loss = torch.rand(1, 5)
    positive = torch.tensor([[True, True, False, False, False]])
    mask = hard_negative_mask(loss, positive, ~positive, 3.0)
    assert torch.equal(mask, ~positive)
