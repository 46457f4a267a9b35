"""End-to-end Cascade (Mask) R-CNN: training steps, images without objects, raw outputs."""

import copy

import pytest
import torch

from detbox.apis.build import fill_num_classes
from detbox.models.detectors import CascadeRCNN
from detbox.structures import Instances

from ._cascade import tiny_cascade_cfg
from ._tiny import build, rectangles_batch, train_steps

STAGE_KEYS = {f"loss_s{t}_{k}" for t in range(3) for k in ("cls", "bbox")}
LOSS_KEYS = {
    "faster": {"loss_rpn_cls", "loss_rpn_bbox", *STAGE_KEYS},
    "mask": {"loss_rpn_cls", "loss_rpn_bbox", *STAGE_KEYS, "loss_s0_mask", "loss_s1_mask",
             "loss_s2_mask"},
}


@pytest.mark.parametrize("kind", ["faster", "mask"])
def test_training_reduces_the_loss_and_predicts_in_original_coordinates(kind):
    model = build(tiny_cascade_cfg(kind))
    assert isinstance(model, CascadeRCNN)
    batch = rectangles_batch(scale=0.5)  # 64x64 inputs of 128x128 originals
    history = train_steps(model, batch, steps=8)
    assert set(history[0]) == LOSS_KEYS[kind]
    assert all(torch.isfinite(torch.tensor(list(h.values()))).all() for h in history)
    total = [sum(h.values()) for h in history]
    assert min(total[-3:]) < 0.85 * total[0], history
    model.eval()
    with torch.no_grad():
        results = model.predict(batch)
    assert len(results) == 2
    for result in results:
        assert len(result) > 0 and result.boxes.shape[1] == 4
        assert (result.boxes >= 0).all() and (result.boxes <= 128).all()
        assert torch.equal(result.scores, result.scores.sort(descending=True).values)
        if kind == "faster":
            assert result.masks is None
        else:
            assert result.masks.dtype == torch.bool
            assert result.masks.shape == (len(result), 128, 128)


@pytest.mark.parametrize("kind", ["faster", "mask"])
def test_images_without_objects_train_and_predict(kind):
    model = build(tiny_cascade_cfg(kind))
    batch = rectangles_batch(with_gt=False)
    batch.samples[1].gt = Instances.empty()  # one image with gt=None, one with no instances
    batch.images.zero_()
    losses = model.train().loss(batch)
    assert set(losses) == LOSS_KEYS[kind]
    for key, value in losses.items():
        assert torch.isfinite(value), key
        if key.endswith("_cls"):
            assert value > 0, key
        else:
            assert value.item() == 0.0, key
    sum(losses.values()).backward()
    model.eval()
    with torch.no_grad():
        results = model.predict(batch)
    assert len(results) == 2
    for result in results:
        assert result.boxes.shape[1] == 4 and result.scores.shape == (len(result),)


def test_zero_detections_have_empty_masks():
    model = build(tiny_cascade_cfg("mask")).eval()
    model.roi_head.bbox_head.score_thr = 1.0
    with torch.no_grad():
        results = model.predict(rectangles_batch(scale=0.5))
    for result in results:
        assert len(result) == 0 and result.masks.shape == (0, 128, 128)


def test_forward_returns_the_last_stages_raw_outputs():
    model = build(tiny_cascade_cfg("faster")).eval()
    with torch.no_grad():
        out = model(torch.zeros(2, 3, 64, 64))
    num_rois = sum(len(p) for p in out["proposals"])
    assert out["cls_score"].shape == (num_rois, 3) and out["bbox_pred"].shape == (num_rois, 4)


def test_num_classes_is_filled_into_every_stage():
    cfg = {"model": tiny_cascade_cfg("mask")}
    for head in ("bbox_head", "mask_head"):
        del cfg["model"]["roi_head"][head]["num_classes"]
    fill_num_classes(cfg, ["a", "b", "c"], source="test")
    model = build(copy.deepcopy(cfg["model"]))
    assert model.num_classes == 3
    assert all(h.fc_cls.out_features == 4 for h in model.roi_head.bbox_heads)
    assert all(h.predictor.out_channels == 3 for h in model.roi_head.mask_heads)
