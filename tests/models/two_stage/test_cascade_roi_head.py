"""CascadeRoIHead: per-stage settings, empty-GT / one-GT losses, and golden checks of the
refined proposals, the stage target stds and the averaged test scores against reference code."""

import pytest
import torch
import torch.nn.functional as F

from detbox.errors import ConfigError
from detbox.models.roi_heads import BoxBranch, CascadeRoIHead, boxes_to_rois
from detbox.registry import MODELS
from detbox.structures import DetSample, Instances

from ._cascade import reference_decode, reference_encode
from ._tiny import box_mask

STDS = [(0.1, 0.1, 0.2, 0.2), (0.05, 0.05, 0.1, 0.1), (0.033, 0.033, 0.067, 0.067)]
SHAPES = [(64, 64), (48, 40)]


def _head(with_mask: bool = False, **kwargs) -> CascadeRoIHead:
    torch.manual_seed(0)
    cfg = {
        "type": "CascadeRoIHead",
        "bbox_head": {"type": "Shared2FCBBoxHead", "num_classes": 3, "in_channels": 4,
                      "fc_channels": 16},
        "bbox_roi_extractor": {"type": "MultiLevelRoIExtractor", "featmap_strides": (4, 8)},
        "mask_roi_extractor": {"type": "MultiLevelRoIExtractor", "output_size": 14,
                               "featmap_strides": (4, 8)},
        "sampler": {"type": "RandomSampler", "num": 16, "pos_fraction": 0.5,
                    "add_gt_as_proposals": True},
        **kwargs,
    }
    if with_mask:
        cfg["mask_head"] = {"type": "FCNMaskHead", "num_classes": 3, "in_channels": 4,
                            "num_convs": 1, "conv_channels": 4}
    return MODELS.build(cfg)


def _feats():
    torch.manual_seed(1)
    return [torch.randn(2, 4, 16, 16), torch.randn(2, 4, 8, 8)]


def _samples(with_gt: bool = True) -> list[DetSample]:
    gts = [Instances(boxes=torch.tensor([[8.0, 8, 40, 40]]), labels=torch.tensor([1]),
                     masks=box_mask((8, 8, 40, 40), SHAPES[0])[None]),
           Instances(boxes=torch.tensor([[4.0, 6, 30, 36], [20, 2, 38, 20]]),
                     labels=torch.tensor([0, 2]),
                     masks=torch.stack([box_mask((4, 6, 30, 36), SHAPES[1]),
                                        box_mask((20, 2, 38, 20), SHAPES[1])]))]
    return [DetSample(image_id=i, file_name="", ori_shape=shape, img_shape=shape,
                      gt=gt if with_gt else None)
            for i, (shape, gt) in enumerate(zip(SHAPES, gts))]


def _proposals() -> list[Instances]:
    boxes = [torch.tensor([[6.0, 10, 42, 38], [0, 0, 20, 20], [30, 30, 60, 60], [9, 7, 41, 39]]),
             torch.tensor([[5.0, 5, 28, 33], [18, 0, 40, 22], [0, 20, 20, 46]])]
    return [Instances(boxes=b, labels=torch.zeros(len(b), dtype=torch.int64)) for b in boxes]


def test_stages_get_the_papers_thresholds_stds_and_weights():
    head = _head()
    assert head.num_stages == 3 and head.stage_loss_weights == (1.0, 0.5, 0.25)
    assert [a.pos_iou_thr for a in head.assigners] == [0.5, 0.6, 0.7]
    assert [a.neg_range for a in head.assigners] == [(0.0, 0.5), (0.0, 0.6), (0.0, 0.7)]
    assert [a.min_pos_iou for a in head.assigners] == [0.5, 0.6, 0.7]
    assert [h.box_coder.target_stds for h in head.bbox_heads] == STDS
    assert all(h.class_agnostic and h.fc_reg.out_features == 4 for h in head.bbox_heads)
    assert head.bbox_head is head.bbox_heads[-1]
    assert len({id(h) for h in head.bbox_heads}) == 3  # separate weights per stage
    keys = set(head.state_dict())
    assert "bbox_heads.2.fc_cls.weight" in keys and not any(k.startswith("mask") for k in keys)


def test_num_stages_weights_and_per_stage_heads_are_configurable():
    head = _head(num_stages=2, stage_loss_weights=(1.0, 1.0),
                 bbox_head=[{"type": "Shared2FCBBoxHead", "num_classes": 3, "in_channels": 4,
                             "fc_channels": 16, "class_agnostic": False},
                            {"type": "Shared2FCBBoxHead", "num_classes": 3, "in_channels": 4,
                             "fc_channels": 8}])
    assert len(head.bbox_heads) == 2 and head.stage_loss_weights == (1.0, 1.0)
    assert [a.pos_iou_thr for a in head.assigners] == [0.5, 0.6]
    assert not head.bbox_heads[0].class_agnostic and head.bbox_heads[1].class_agnostic
    assert head.bbox_heads[1].fc_cls.in_features == 8
    losses = head.loss(_feats(), _proposals(), _samples())
    assert set(losses) == {"loss_s0_cls", "loss_s0_bbox", "loss_s1_cls", "loss_s1_bbox"}


@pytest.mark.parametrize("kwargs, message", [
    ({"num_stages": 4}, "stage_loss_weights has 3 entries for num_stages=4"),
    ({"bbox_head": [{"type": "Shared2FCBBoxHead", "num_classes": 3}] * 2},
     "bbox_head lists 2 configs for num_stages=3"),
])
def test_inconsistent_stage_settings_are_config_errors(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        _head(**kwargs)


def test_losses_with_empty_gt_and_with_one_gt():
    head = _head(with_mask=True)
    empty = head.loss(_feats(), _proposals(), _samples(with_gt=False))
    assert set(empty) == {f"loss_s{t}_{k}" for t in range(3) for k in ("cls", "bbox", "mask")}
    for t in range(3):
        assert torch.isfinite(empty[f"loss_s{t}_cls"]) and empty[f"loss_s{t}_cls"] > 0
        assert empty[f"loss_s{t}_bbox"].item() == 0.0 and empty[f"loss_s{t}_mask"].item() == 0.0
    sum(empty.values()).backward()

    samples = _samples()
    samples[1].gt = samples[1].gt[:1]  # one GT in each image
    head = _head(with_mask=True)
    losses = head.loss(_feats(), _proposals(), samples)
    assert all(torch.isfinite(v) for v in losses.values())
    for t in range(3):  # every stage has the GT itself as a positive
        assert losses[f"loss_s{t}_cls"] > 0 and losses[f"loss_s{t}_mask"] > 0
    assert losses["loss_s0_bbox"] > 0
    sum(losses.values()).backward()
    for mask_head in head.mask_heads:
        assert mask_head.predictor.weight.grad.abs().sum() > 0


def test_stage_losses_are_scaled_by_the_stage_weights():
    torch.manual_seed(3)
    weighted = _head(stage_loss_weights=(1.0, 0.5, 0.25)).loss(_feats(), _proposals(), _samples())
    torch.manual_seed(3)
    plain = _head(stage_loss_weights=(1.0, 1.0, 1.0)).loss(_feats(), _proposals(), _samples())
    for t, w in enumerate((1.0, 0.5, 0.25)):
        for kind in ("cls", "bbox"):
            key = f"loss_s{t}_{kind}"
            torch.testing.assert_close(weighted[key], plain[key] * w)


def _record_stages(monkeypatch):
    """Record each stage's input proposals and its (sampling results, outputs)."""
    inputs, trained = [], []
    sample, loss = BoxBranch.sample, BoxBranch.loss

    def recording_sample(self, proposals, gts, samples):
        inputs.append([p.boxes.clone() for p in proposals])
        return sample(self, proposals, gts, samples)

    def recording_loss(self, feats, results, gts):
        losses, out = loss(self, feats, results, gts)
        trained.append((results, out))
        return losses, out

    monkeypatch.setattr(BoxBranch, "sample", recording_sample)
    monkeypatch.setattr(BoxBranch, "loss", recording_loss)
    return inputs, trained


def test_next_stage_trains_on_refined_sampled_rois_without_the_gt(monkeypatch):
    inputs, trained = _record_stages(monkeypatch)
    head, samples = _head(), _samples()
    head.loss(_feats(), _proposals(), samples)
    assert len(inputs) == 3
    for t in range(2):
        results, out = trained[t]
        for i, (res, shape) in enumerate(zip(results, SHAPES)):
            rows = torch.nonzero(out.rois[:, 0] == i).flatten()
            expected = reference_decode(out.rois[rows, 1:], out.bbox_pred[rows].detach(),
                                        STDS[t], shape)
            from_gt = [int(j) < res.num_gts for j in res.pos_inds] + [False] * res.num_neg
            assert any(from_gt)  # the GT boxes were sampled, and are dropped
            expected = expected[[not g for g in from_gt]]
            torch.testing.assert_close(inputs[t + 1][i], expected, atol=1e-4, rtol=1e-5)


def test_each_stage_regresses_towards_the_gt_with_its_own_stds(monkeypatch):
    _, trained = _record_stages(monkeypatch)
    head, samples = _head(), _samples()
    head.loss(_feats(), _proposals(), samples)
    for t, (results, _) in enumerate(trained):
        gts = [s.gt for s in samples]
        _, targets = head.bbox_heads[t].get_targets(results, gts)
        row = 0
        for res, gt in zip(results, gts):
            for box, g in zip(res.pos_boxes.tolist(), gt.boxes[res.pos_gt_inds].tolist()):
                expected = torch.tensor(reference_encode(box, g, STDS[t]))
                torch.testing.assert_close(targets[row], expected, atol=1e-4, rtol=1e-4)
                row += 1
            row += res.num_neg


def _reference_predict(head, feats, proposals):
    """Scores and boxes of every (RoI, class) pair, with the cascade written out by hand."""
    rois = boxes_to_rois([p.boxes for p in proposals])
    probs = []
    for t, bbox_head in enumerate(head.bbox_heads):
        cls_score, deltas = bbox_head(head.bbox_roi_extractor(feats, rois))
        probs.append(F.softmax(cls_score, dim=1))
        boxes = torch.cat([reference_decode(rois[rois[:, 0] == i, 1:], deltas[rois[:, 0] == i],
                                            STDS[t], shape) for i, shape in enumerate(SHAPES)])
        if t < 2:
            rois = torch.cat([rois[:, :1], boxes], dim=1)
    return sum(probs) / 3, probs[-1], boxes, rois


def test_test_scores_are_the_mean_of_the_stages_probabilities():
    head = _head().eval()
    for bbox_head in head.bbox_heads:
        bbox_head.score_thr, bbox_head.nms_iou_thr, bbox_head.max_per_img = 0.0, 1.0, 1000
    feats, proposals = _feats(), _proposals()
    with torch.no_grad():
        dets = head.predict(feats, proposals, _samples())
        mean, last, boxes, rois = _reference_predict(head, feats, proposals)
    for i, det in enumerate(dets):
        rows = rois[:, 0] == i
        expected = mean[rows, :3].flatten().sort(descending=True).values
        assert len(det) == expected.numel()
        torch.testing.assert_close(det.scores, expected, atol=1e-5, rtol=1e-5)
        # The last stage's scores alone would give other values.
        assert not torch.allclose(det.scores, last[rows, :3].flatten().sort(descending=True).values)
        top = mean[rows, :3].flatten().argmax()
        torch.testing.assert_close(det.boxes[0], boxes[rows][top // 3], atol=1e-4, rtol=1e-5)


def test_predict_masks_from_the_last_stage_and_on_no_proposals():
    head = _head(with_mask=True).eval()
    head.bbox_head.score_thr = 0.0
    empty = [Instances(boxes=torch.zeros(0, 4), labels=torch.zeros(0, dtype=torch.int64))] * 2
    with torch.no_grad():
        dets = head.predict(_feats(), _proposals(), _samples())
        nothing = head.predict(_feats(), empty, _samples())
    for det in dets:
        assert len(det) > 0 and det.masks.shape == (len(det), 28, 28)
    for det in nothing:
        assert len(det) == 0 and det.masks.shape == (0, 28, 28)
    # Only the last stage's mask head decides the masks.
    with torch.no_grad():
        head.mask_heads[0].predictor.weight.add_(1.0)
        again = head.predict(_feats(), _proposals(), _samples())
        head.mask_heads[2].predictor.weight.add_(1.0)
        changed = head.predict(_feats(), _proposals(), _samples())
    assert torch.equal(again[0].masks, dets[0].masks)
    assert not torch.equal(changed[0].masks, dets[0].masks)
