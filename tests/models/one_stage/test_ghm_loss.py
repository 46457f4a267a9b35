"""GHM-C / GHM-R against a direct per-element reference, and in RetinaNet by config."""

from pathlib import Path

import pytest
import torch

from detbox.config import load_config
from detbox.models.losses import GHMC, GHMR
from detbox.models.losses.ghm_loss import gradient_density_weights
from detbox.registry import MODELS
from detbox.structures import ImageBatch

from .._helpers import make_sample, rectangle_image, tiny_retina_head_cfg, tiny_retinanet_cfg

CONFIGS = Path(__file__).resolve().parents[3] / "configs"


def reference_weights(g, valid, bins, momentum=0.0, acc=None):
    """The paper's rule element by element: edges i / bins, the last edge nudged above 1."""
    edges = [i / bins for i in range(bins + 1)]
    edges[-1] += 1e-6
    g, valid = g.flatten().tolist(), valid.flatten().tolist()
    total = max(sum(valid), 1)
    weights, non_empty = [0.0] * len(g), 0
    for i in range(bins):
        members = [k for k, v in enumerate(g) if valid[k] and edges[i] <= v < edges[i + 1]]
        if not members:
            continue
        non_empty += 1
        count = len(members)
        if momentum > 0:
            acc[i] = momentum * acc[i] + (1 - momentum) * count
            count = acc[i]
        for k in members:
            weights[k] = total / count
    if non_empty:
        weights = [w / non_empty for w in weights]
    return torch.tensor(weights)


def reference_ghmc(logits, one_hot, valid, bins, momentum=0.0, acc=None):
    g = (logits.sigmoid() - one_hot).abs()
    w = reference_weights(g, valid, bins, momentum, acc).reshape(logits.shape)
    p = logits.sigmoid()
    bce = -(one_hot * p.log() + (1 - one_hot) * (1 - p).log())
    return (w * bce).sum() / max(int(valid.sum()), 1)


def test_bin_weights_match_the_reference():
    gen = torch.Generator().manual_seed(0)
    g = torch.rand(40, 3, generator=gen)
    g[0, 0], g[1, 1] = 1.0, 0.0  # 1 belongs to the last bin
    valid = torch.rand(40, 3, generator=gen) > 0.2
    weights = gradient_density_weights(g, valid, bins=10)
    torch.testing.assert_close(weights.flatten(), reference_weights(g, valid, 10))
    assert weights[~valid].abs().sum() == 0
    # Every valid element's weight is T / (n_bin * non-empty bins): the weights sum to T.
    torch.testing.assert_close(weights.sum(), valid.sum().float())


def test_ghmc_matches_the_reference_over_momentum_iterations():
    gen = torch.Generator().manual_seed(1)
    loss_fn = GHMC(bins=10, momentum=0.75).train()
    acc = [0.0] * 10
    for _ in range(3):
        logits = torch.randn(30, 4, generator=gen) * 3
        labels = torch.randint(0, 5, (30,), generator=gen)  # 4 = background
        one_hot = torch.nn.functional.one_hot(labels, 5)[:, :4].float()
        weight = (torch.rand(30, generator=gen) > 0.3).float()
        loss = loss_fn(logits, labels, weight=weight, avg_factor=123.0)
        expected = reference_ghmc(logits, one_hot, (weight > 0)[:, None].expand(30, 4), 10,
                                  0.75, acc)
        torch.testing.assert_close(loss, expected.float(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(loss_fn.running_counts, torch.tensor(acc, dtype=torch.float32))


def test_ghmc_without_momentum_and_in_eval_mode_use_the_batch_counts():
    gen = torch.Generator().manual_seed(2)
    logits, one_hot = torch.randn(20, 3, generator=gen), (torch.rand(20, 3, generator=gen) > 0.8)
    one_hot = one_hot.float()
    valid = torch.ones(20, 3, dtype=torch.bool)
    expected = reference_ghmc(logits, one_hot, valid, 5)
    torch.testing.assert_close(GHMC(bins=5, momentum=0.0)(logits, one_hot), expected.float())
    eval_loss = GHMC(bins=5, momentum=0.75).eval()
    torch.testing.assert_close(eval_loss(logits, one_hot), expected.float())
    assert eval_loss.running_counts.sum() == 0


def test_ghmr_matches_the_reference():
    gen = torch.Generator().manual_seed(3)
    pred, target = torch.randn(12, 4, generator=gen), torch.randn(12, 4, generator=gen) * 0.1
    loss_fn = GHMR(mu=0.02, bins=10, momentum=0.7, loss_weight=2.0).train()
    acc = [0.0] * 10
    for _ in range(2):
        loss = loss_fn(pred, target, avg_factor=5.0)
        diff = pred - target
        root = (diff**2 + 0.02**2).sqrt()
        w = reference_weights((diff / root).abs(), torch.ones(12, 4, dtype=torch.bool), 10, 0.7,
                              acc).reshape(12, 4)
        expected = 2.0 * ((root - 0.02) * w).sum() / 48
        torch.testing.assert_close(loss, expected.float(), rtol=1e-5, atol=1e-6)


def test_empty_inputs_give_a_zero_that_keeps_the_graph():
    pred = torch.zeros(0, 4, requires_grad=True)
    for loss_fn in (GHMC(), GHMR()):
        loss = loss_fn(pred, torch.zeros(0, 4))
        assert loss.item() == 0.0 and loss.grad_fn is not None


def _ghm_head_cfg():
    return tiny_retina_head_cfg(loss_cls={"type": "GHMC", "bins": 30, "momentum": 0.75},
                                loss_bbox={"type": "GHMR", "mu": 0.02, "loss_weight": 10.0})


def test_retina_head_with_ghm_losses_empty_and_one_gt():
    torch.manual_seed(0)
    head = MODELS.build(_ghm_head_cfg()).train()
    feats = [torch.randn(1, 8, s, s) for s in (8, 4, 2)]
    empty = head.loss(feats, [make_sample(img_shape=(64, 64))])
    assert empty["loss_cls"] > 0 and empty["loss_bbox"].item() == 0.0
    one = head.loss(feats, [make_sample([[8.0, 8, 40, 40]], [1])])
    assert torch.isfinite(one["loss_cls"]) and one["loss_bbox"] > 0
    (one["loss_cls"] + one["loss_bbox"]).backward()
    assert head.box_deltas.weight.grad.abs().sum() > 0
    assert head.loss_cls.running_counts.sum() > 0


def test_tiny_retinanet_with_ghm_trains_and_predicts_on_an_empty_image():
    torch.manual_seed(0)
    cfg = tiny_retinanet_cfg()
    cfg["bbox_head"].update(loss_cls={"type": "GHMC"}, loss_bbox={"type": "GHMR"})
    model = MODELS.build(cfg).train()
    batch = ImageBatch(images=rectangle_image((16, 16, 48, 48)),
                       samples=[make_sample([[16.0, 16, 48, 48]], [1])])
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    totals = []
    for _ in range(8):
        losses = model.loss(batch)
        total = sum(losses.values())
        optimizer.zero_grad()
        total.backward()
        optimizer.step()
        totals.append(total.item())
    assert min(totals[-3:]) < totals[0], totals
    with torch.no_grad():
        (result,) = model.eval().predict(ImageBatch(images=torch.zeros(1, 3, 64, 64),
                                                    samples=[make_sample()]))
    assert result.boxes.shape[1] == 4 and len(result) <= 100


@pytest.mark.parametrize("name", ["ghm/retinanet_ghm_r50_fpn_1x_coco.py",
                                  "ghm/retinanet_ghm_r18_fpn_synthetic.py"])
def test_shipped_configs_build_and_train(name):
    model_cfg = load_config(CONFIGS / name).model.to_dict()
    model_cfg["bbox_head"]["num_classes"] = 3
    model = MODELS.build(model_cfg)
    assert type(model.bbox_head.loss_cls).__name__ == "GHMC"
    assert type(model.bbox_head.loss_bbox).__name__ == "GHMR"
    batch = ImageBatch(images=rectangle_image((8, 8, 40, 56)),
                       samples=[make_sample([[8.0, 8, 40, 56]], [2])])
    losses = model.train().loss(batch)
    assert all(torch.isfinite(v) and v > 0 for v in losses.values())
