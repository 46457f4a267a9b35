"""The validation loss: training-mode loss() with BatchNorm/Dropout frozen and no gradient."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from engine_fakes import FakeDetector, make_loader

from detbox.engine.val_loss import compute_val_loss
from detbox.errors import ConfigError
from detbox.structures import ImageBatch


def test_val_loss_is_the_image_weighted_mean_without_touching_statistics():
    torch.manual_seed(0)
    model = FakeDetector().eval()
    batches = list(make_loader(batch_size=5))[:2] + [list(make_loader(batch_size=2))[0]]
    running_mean = model.norm.running_mean.clone()

    result = compute_val_loss(model, batches, torch.device("cpu"))

    assert set(result) == {"val_loss", "val_loss_cls", "val_loss_bbox"}
    assert torch.equal(model.norm.running_mean, running_mean)
    assert not any(m.training for m in model.modules())  # modes restored
    assert all(p.grad is None for p in model.parameters())
    model.train()
    model.norm.eval()
    model.dropout.eval()
    sizes = [len(b.samples) for b in batches]
    with torch.no_grad():
        totals = [sum(v for k, v in model.loss(b).items() if k.startswith("loss")) for b in batches]
    expected = sum(float(t) * n for t, n in zip(totals, sizes)) / sum(sizes)
    assert result["val_loss"] == pytest.approx(expected, rel=1e-6)
    assert result["val_loss"] == pytest.approx(result["val_loss_cls"] + result["val_loss_bbox"])


def test_val_loss_needs_ground_truth():
    batch = list(make_loader(batch_size=2))[0]
    no_gt = ImageBatch(batch.images, [dataclasses.replace(s, gt=None) for s in batch.samples])
    with pytest.raises(ConfigError, match="val_loss needs ground truth.*LoadAnnotations"):
        compute_val_loss(FakeDetector(), [no_gt], torch.device("cpu"))
