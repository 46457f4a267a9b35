"""End-to-end two-stage detectors: training steps, empty images, zero detections, outputs."""

import copy

import pytest
import torch

from detbox.apis.build import fill_num_classes
from detbox.models.roi_heads import StandardRoIHead
from detbox.structures import DetSample, ImageBatch, Instances

from ._tiny import (
    build,
    rectangles_batch,
    tiny_c4_cfg,
    tiny_rpn_head,
    tiny_two_stage_cfg,
    train_steps,
)

LOSS_KEYS = {
    "faster": {"loss_rpn_cls", "loss_rpn_bbox", "loss_cls", "loss_bbox"},
    "mask": {"loss_rpn_cls", "loss_rpn_bbox", "loss_cls", "loss_bbox", "loss_mask"},
    "ms": {"loss_rpn_cls", "loss_rpn_bbox", "loss_cls", "loss_bbox", "loss_mask", "loss_mask_iou"},
}


def _total(losses: dict) -> float:
    return sum(losses.values())


@pytest.mark.parametrize("kind", ["faster", "mask", "ms"])
def test_training_reduces_the_loss_and_predicts_in_original_coordinates(kind):
    model = build(tiny_two_stage_cfg(kind))
    batch = rectangles_batch(scale=0.5)  # 64x64 inputs of 128x128 originals
    history = train_steps(model, batch, steps=8)
    assert set(history[0]) == LOSS_KEYS[kind]
    assert all(torch.isfinite(torch.tensor(list(h.values()))).all() for h in history)
    assert min(_total(h) for h in history[-3:]) < 0.85 * _total(history[0]), history
    model.eval()
    with torch.no_grad():
        results = model.predict(batch)
    assert len(results) == 2
    for result in results:
        assert result.boxes.shape[1] == 4 and len(result) > 0
        assert (result.boxes >= 0).all() and (result.boxes <= 128).all()
        assert torch.equal(result.scores, result.scores.sort(descending=True).values)
        if kind == "faster":
            assert result.masks is None
        else:
            assert result.masks.dtype == torch.bool
            assert result.masks.shape == (len(result), 128, 128)
        if kind == "ms":
            assert result.mask_iou.shape == (len(result),)
        else:
            assert result.mask_iou is None


def test_mask_rcnn_c4_trains_and_predicts_masks():
    model = build(tiny_c4_cfg())
    batch = rectangles_batch()
    history = train_steps(model, batch, steps=8, lr=0.005)
    assert set(history[0]) == LOSS_KEYS["mask"]
    assert min(_total(h) for h in history[-3:]) < 0.9 * _total(history[0]), history
    model.eval()
    with torch.no_grad():
        (result, _) = model.predict(batch)
    assert result.masks.shape == (len(result), 64, 64) and result.masks.dtype == torch.bool


@pytest.mark.parametrize("kind", ["faster", "ms"])
def test_images_without_objects_train(kind):
    model = build(tiny_two_stage_cfg(kind))
    batch = rectangles_batch(with_gt=False)
    batch.samples[1].gt = Instances.empty()  # one image with gt=None, one with no instances
    losses = model.train().loss(batch)
    assert set(losses) == LOSS_KEYS[kind]
    assert losses["loss_rpn_cls"] > 0 and losses["loss_cls"] > 0
    for key in LOSS_KEYS[kind] - {"loss_rpn_cls", "loss_cls"}:
        assert losses[key].item() == 0.0, key
    _total(losses).backward()


def test_every_proposal_background_trains():
    model = build(tiny_two_stage_cfg("mask"))
    model.roi_head.sampler.add_gt_as_proposals = False
    batch = rectangles_batch()
    for sample in batch.samples:  # a tiny object no proposal of 16+ pixels can match
        sample.gt.boxes = torch.tensor([[1.0, 1.0, 3.0, 3.0]])
    losses = model.train().loss(batch)
    assert losses["loss_bbox"].item() == 0.0 and losses["loss_mask"].item() == 0.0
    _total(losses).backward()


@pytest.mark.parametrize("kind", ["faster", "mask", "ms"])
def test_zero_detections(kind):
    model = build(tiny_two_stage_cfg(kind)).eval()
    model.roi_head.bbox_head.score_thr = 1.0
    with torch.no_grad():
        results = model.predict(rectangles_batch(scale=0.5))
    for result in results:
        assert len(result) == 0 and result.boxes.shape == (0, 4)
        if kind != "faster":
            assert result.masks.shape == (0, 128, 128) and result.masks.dtype == torch.bool
        if kind == "ms":
            assert result.mask_iou.shape == (0,)


def test_masks_of_flipped_images_are_unflipped():
    model = build(tiny_two_stage_cfg("mask")).eval()
    probs = torch.zeros(1, 28, 28)
    probs[0, :, :14] = 1.0  # left half of the box, in the flipped image
    det = Instances(
        boxes=torch.tensor([[0.0, 0, 8, 8]]),
        labels=torch.tensor([0]),
        scores=torch.tensor([0.9]),
        masks=probs,
    )
    sample = DetSample(
        image_id=0, file_name="", ori_shape=(16, 16), img_shape=(16, 16), flip="horizontal"
    )
    (result,) = model.postprocess([det], [sample])
    assert torch.equal(result.boxes, torch.tensor([[8.0, 0, 16, 8]]))
    expected = torch.zeros(16, 16, dtype=torch.bool)
    expected[0:8, 12:16] = True  # the right half of the unflipped box
    assert torch.equal(result.masks[0], expected)


def test_forward_returns_raw_outputs():
    model = build(tiny_two_stage_cfg("faster")).eval()
    with torch.no_grad():
        out = model(torch.zeros(1, 3, 64, 64))
    assert set(out) == {"rpn_cls_logits", "rpn_box_deltas", "proposals", "cls_score", "bbox_pred"}
    assert len(out["rpn_cls_logits"]) == 5 and out["cls_score"].shape[1] == 3


def test_rpn_detector_proposes_class_agnostic_boxes():
    model = build(
        {
            "type": "RPN",
            "backbone": tiny_two_stage_cfg()["backbone"],
            "neck": tiny_two_stage_cfg()["neck"],
            "rpn_head": tiny_rpn_head(),
        }
    )
    batch = rectangles_batch(scale=0.5)
    assert set(model.train().loss(batch)) == {"loss_rpn_cls", "loss_rpn_bbox"}
    with torch.no_grad():
        results = model.eval().predict(batch)
    for result in results:
        assert 0 < len(result) <= 100 and (result.labels == 0).all()
        assert (result.boxes <= 128).all() and result.scores is not None


def test_num_classes_is_filled_from_the_dataset_and_aliases_build():
    cfg = {"model": tiny_two_stage_cfg("ms")}
    for head in ("bbox_head", "mask_head", "mask_iou_head"):
        del cfg["model"]["roi_head"][head]["num_classes"]
    cfg["model"]["roi_head"]["type"] = "MaskScoringRoIHead"
    fill_num_classes(cfg, ["a", "b", "c"], source="test")
    model = build(copy.deepcopy(cfg["model"]))
    assert isinstance(model.roi_head, StandardRoIHead) and model.num_classes == 3
    assert model.roi_head.mask_iou_head.fc_iou.out_features == 3


def test_batch_of_one_without_padding_matches_padded_batch():
    model = build(tiny_two_stage_cfg("faster")).eval()
    batch = rectangles_batch()
    padded = ImageBatch(torch.nn.functional.pad(batch.images, (0, 32, 0, 32)), batch.samples)
    with torch.no_grad():
        plain, extra = model.predict(batch), model.predict(padded)
    # Zero padding changes the features near the border but never the output space.
    for a, b in zip(plain, extra):
        assert (b.boxes[:, 2] <= 64).all() and (b.boxes[:, 3] <= 64).all()
        assert a.boxes.shape[1] == b.boxes.shape[1]
