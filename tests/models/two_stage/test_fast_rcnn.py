"""Fast R-CNN: the RoI head trained and tested on proposals carried by the samples."""

import copy

import pytest
import torch

from detbox.errors import ConfigError
from detbox.models.detectors.fast_rcnn import FORWARD_NUM_PROPOSALS
from detbox.structures import ImageBatch, Instances

from ._tiny import build, rectangles_batch, tiny_two_stage_cfg, train_steps


def fast_rcnn_cfg(kind: str = "faster") -> dict:
    cfg = copy.deepcopy(tiny_two_stage_cfg(kind))
    del cfg["rpn_head"]
    cfg["type"] = "FastRCNN"
    return cfg


def with_proposals(batch: ImageBatch, seed: int = 0) -> ImageBatch:
    """Jittered copies of each GT box plus random boxes, as an RPN would propose them."""
    g = torch.Generator().manual_seed(seed)
    for sample in batch.samples:
        size = sample.img_shape[1]
        gt = sample.gt.boxes if sample.gt is not None else torch.zeros(0, 4)
        near = (gt.repeat(8, 1) + torch.randn(8 * len(gt), 4, generator=g) * 3).clamp(0, size)
        xy = torch.rand(40, 2, generator=g) * size * 0.7
        far = torch.cat([xy, xy + 8 + torch.rand(40, 2, generator=g) * size * 0.3], 1)
        boxes = torch.cat([near, far.clamp(max=size)])
        sample.proposals = Instances(boxes=boxes, scores=torch.ones(len(boxes)),
                                     labels=torch.zeros(len(boxes), dtype=torch.int64))
    return batch


@pytest.mark.parametrize("kind", ["faster", "mask"])
def test_training_reduces_the_loss_and_predicts_in_original_coordinates(kind):
    model = build(fast_rcnn_cfg(kind))
    assert not hasattr(model, "rpn_head")
    batch = with_proposals(rectangles_batch(scale=0.5))
    history = train_steps(model, batch, steps=8)
    expected = {"loss_cls", "loss_bbox"} | ({"loss_mask"} if kind == "mask" else set())
    assert set(history[0]) == expected
    total = [sum(h.values()) for h in history]
    assert min(total[-3:]) < 0.85 * total[0], history
    model.eval()
    with torch.no_grad():
        results = model.predict(batch)
    for result in results:
        assert len(result) > 0 and (result.boxes <= 128).all() and (result.boxes >= 0).all()
        if kind == "mask":
            assert result.masks.shape == (len(result), 128, 128)


def test_empty_and_one_gt_losses():
    model = build(fast_rcnn_cfg()).train()
    batch = with_proposals(rectangles_batch(with_gt=False))
    losses = model.loss(batch)
    assert losses["loss_cls"] > 0 and losses["loss_bbox"].item() == 0.0
    sum(losses.values()).backward()
    losses = model.loss(with_proposals(rectangles_batch()))
    assert losses["loss_cls"] > 0 and losses["loss_bbox"] > 0


def test_images_without_proposals():
    model = build(fast_rcnn_cfg()).eval()
    batch = rectangles_batch()
    with pytest.raises(ConfigError, match="LoadProposals"):
        model.predict(batch)
    for sample in batch.samples:  # an empty proposal set: no detections, no error
        sample.proposals = Instances.empty()
    with torch.no_grad():
        results = model.predict(batch)
    assert all(len(r) == 0 and r.boxes.shape == (0, 4) for r in results)
    empty = with_proposals(rectangles_batch(with_gt=False))
    empty.images.zero_()
    with torch.no_grad():
        results = model.predict(empty)
    assert all(r.boxes.shape[1] == 4 for r in results)


def test_forward_runs_the_roi_head_on_given_or_default_proposals():
    model = build(fast_rcnn_cfg()).eval()
    with torch.no_grad():
        out = model(torch.zeros(2, 3, 64, 64))
        given = model(torch.zeros(1, 3, 64, 64), [torch.tensor([[0.0, 0, 10, 10]])])
    assert out["cls_score"].shape == (2 * FORWARD_NUM_PROPOSALS, 3)
    assert given["cls_score"].shape == (1, 3) and given["bbox_pred"].shape == (1, 8)
