"""OHEM sampling in the RoI head, and the Libra R-CNN composition, end to end on tiny models."""

import pytest
import torch

from detbox.errors import ConfigError
from detbox.models.roi_heads.targets import sample_proposals
from detbox.models.task_modules import AssignResult, MaxIoUAssigner, OHEMSampler
from detbox.structures import ImageBatch, Instances

from ._tiny import build, rectangles_batch, tiny_two_stage_cfg, train_steps


def ohem_cfg() -> dict:
    cfg = tiny_two_stage_cfg("faster")
    cfg["roi_head"]["sampler"] = {"type": "OHEMSampler", "num": 32, "pos_fraction": 0.25,
                                  "add_gt_as_proposals": True}
    return cfg


def libra_cfg() -> dict:
    cfg = tiny_two_stage_cfg("faster")
    cfg["neck"] = {"type": "NeckSequence",
                   "necks": [cfg["neck"], {"type": "BFP", "in_channels": 16}]}
    cfg["rpn_head"]["loss_bbox"] = {"type": "SmoothL1Loss", "beta": 1.0 / 9.0}
    cfg["roi_head"]["sampler"] = {"type": "IoUBalancedNegSampler", "num": 64,
                                  "pos_fraction": 0.25, "add_gt_as_proposals": True}
    cfg["roi_head"]["bbox_head"]["loss_bbox"] = {"type": "BalancedL1Loss"}
    return cfg


def test_ohem_sampler_keeps_the_hardest():
    matched = torch.tensor([0, 0, 0, -1, -1, -1, -1, -2])
    hardness = torch.tensor([0.1, 0.9, 0.5, 0.2, 3.0, 0.05, 1.0, 9.0])
    sampler = OHEMSampler(num=4, pos_fraction=0.5)
    pos, neg = sampler.sample(AssignResult(matched, torch.zeros(8)), hardness)
    assert pos.tolist() == [1, 2] and neg.tolist() == [4, 6]  # the ignored box never
    sampler = OHEMSampler(num=4, pos_fraction=0.5, neg_pos_ub=0.5)
    pos, neg = sampler.sample(AssignResult(matched, torch.zeros(8)), hardness)
    assert pos.tolist() == [1, 2] and neg.tolist() == [4]
    with pytest.raises(ConfigError, match="loss"):
        sampler.sample(AssignResult(matched, torch.zeros(8)))


def test_a_hard_mining_sampler_without_losses_is_a_clear_error():
    batch = rectangles_batch()
    with pytest.raises(ConfigError, match="RandomSampler"):
        sample_proposals(MaxIoUAssigner(pos_iou_thr=0.5, neg_iou_thr=0.5),
                         OHEMSampler(num=8, pos_fraction=0.25), [batch.samples[0].gt],
                         [batch.samples[0].gt], batch.samples[:1])


def test_candidate_losses_are_the_head_losses_per_roi():
    model = build(ohem_cfg()).train()
    torch.nn.init.normal_(model.roi_head.bbox_head.fc_reg.weight, std=0.1)
    batch = rectangles_batch()
    feats = model.extract_feat(batch.images)
    proposals = model.rpn_head.predict(feats, batch.samples)
    gts = [s.gt for s in batch.samples]
    branch = model.roi_head.box_branch
    branch.sampler = OHEMSampler(num=10_000, pos_fraction=1.0, add_gt_as_proposals=True)
    results = branch.sample(proposals, gts, batch.samples, feats)  # everything, hardest first
    losses, _ = branch.loss(feats, results, gts)
    per_roi = []
    for i, res in enumerate(results):
        assign = branch.assigner.assign(res.boxes, gts[i].boxes)
        assign.matched_gt[: res.num_gts] = torch.arange(res.num_gts)
        hardness = branch.candidate_losses(feats, i, res.boxes, assign, gts[i])
        sampled = torch.cat([res.pos_inds, res.neg_inds])
        assert torch.isfinite(hardness[sampled]).all()
        assert torch.equal(hardness[res.pos_inds], hardness[res.pos_inds].sort(
            descending=True).values)
        per_roi.append(hardness[sampled])
    per_roi = torch.cat(per_roi)
    total = losses["loss_cls"] + losses["loss_bbox"]
    assert losses["loss_bbox"] > 0
    assert torch.allclose(per_roi.sum() / per_roi.numel(), total, rtol=1e-4)


@pytest.mark.parametrize("make_cfg", [ohem_cfg, libra_cfg], ids=["ohem", "libra"])
def test_training_reduces_the_loss_and_predicts(make_cfg):
    model = build(make_cfg())
    batch = rectangles_batch(scale=0.5)
    history = train_steps(model, batch, steps=8)
    assert set(history[0]) == {"loss_rpn_cls", "loss_rpn_bbox", "loss_cls", "loss_bbox"}
    assert all(torch.isfinite(torch.tensor(list(h.values()))).all() for h in history)
    total = [sum(h.values()) for h in history]
    assert min(total[-3:]) < 0.85 * total[0], history
    model.eval()
    with torch.no_grad():
        results = model.predict(batch)
        empty = model.predict(ImageBatch(images=torch.zeros(1, 3, 64, 64),
                                         samples=batch.samples[:1]))
    assert all(r.boxes.shape[1] == 4 for r in results)
    assert (results[0].boxes <= 128).all()
    assert len(empty) == 1 and empty[0].boxes.shape[1] == 4


@pytest.mark.parametrize("make_cfg", [ohem_cfg, libra_cfg], ids=["ohem", "libra"])
def test_empty_and_one_gt_losses(make_cfg):
    model = build(make_cfg()).train()
    batch = rectangles_batch(with_gt=False)
    batch.samples[1].gt = Instances.empty()
    losses = model.loss(batch)
    assert losses["loss_cls"] > 0 and losses["loss_bbox"].item() == 0.0
    assert losses["loss_rpn_bbox"].item() == 0.0
    sum(losses.values()).backward()
    model.zero_grad()
    losses = model.loss(rectangles_batch())
    assert all(torch.isfinite(v) for v in losses.values())
    assert losses["loss_cls"] > 0 and losses["loss_bbox"] > 0 and losses["loss_rpn_bbox"] > 0
    sum(losses.values()).backward()
