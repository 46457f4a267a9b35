"""Hybrid Task Cascade: mask information flow, interleaved training, the semantic branch
(targets, RoI feature fusion, loss), empty-GT / one-GT losses and end-to-end training."""

import pytest
import torch
import torch.nn.functional as F

from detbox.apis.build import fill_num_classes
from detbox.errors import DetboxError
from detbox.models.roi_heads import BoxBranch, FusedSemanticHead, boxes_to_rois
from detbox.models.roi_heads.htc_roi_head import SemanticRoIFeatures
from detbox.models.roi_heads.roi_extractor import MultiLevelRoIExtractor
from detbox.models.roi_heads.semantic_head import semantic_targets
from detbox.structures import DetSample, Instances

from ._cascade import tiny_htc_cfg
from ._tiny import build, rectangles_batch, train_steps

STAGE_KEYS = {f"loss_s{t}_{k}" for t in range(3) for k in ("cls", "bbox", "mask")}


def _with_semantic_maps(batch):
    """Semantic maps: 0 background, 1 + label inside each object."""
    for sample in batch.samples:
        seg = torch.zeros(sample.img_shape, dtype=torch.uint8)
        if sample.gt is not None and sample.gt.masks is not None:
            for mask, label in zip(sample.gt.masks, sample.gt.labels):
                seg[mask.bool()] = int(label) + 1
        sample.gt_sem_seg = seg
    return batch


def test_mask_heads_read_the_previous_stage_unless_the_flow_is_off():
    model = build(tiny_htc_cfg())
    assert [h.with_conv_res for h in model.roi_head.mask_heads] == [False, True, True]
    assert model.roi_head.interleaved and model.roi_head.mask_info_flow
    plain = build(tiny_htc_cfg(mask_info_flow=False))
    assert [h.with_conv_res for h in plain.roi_head.mask_heads] == [False, False, False]


@pytest.mark.parametrize("with_semantic", [False, True])
def test_training_reduces_the_loss_and_predicts_masks(with_semantic):
    model = build(tiny_htc_cfg(with_semantic=with_semantic))
    batch = _with_semantic_maps(rectangles_batch(scale=0.5))
    history = train_steps(model, batch, steps=8)
    expected = {"loss_rpn_cls", "loss_rpn_bbox", *STAGE_KEYS}
    assert set(history[0]) == expected | ({"loss_semantic_seg"} if with_semantic else set())
    total = [sum(h.values()) for h in history]
    assert all(torch.isfinite(torch.tensor(t)) for t in total)
    assert min(total[-3:]) < 0.85 * total[0], history
    model.eval()
    with torch.no_grad():
        results = model.predict(batch)
    for result in results:
        assert len(result) > 0 and (result.boxes <= 128).all()
        assert result.masks.dtype == torch.bool and result.masks.shape == (len(result), 128, 128)


def test_losses_with_empty_gt_and_one_gt():
    model = build(tiny_htc_cfg(with_semantic=True)).train()
    empty = rectangles_batch(with_gt=False)
    empty.samples[1].gt = Instances.empty()
    losses = model.loss(_with_semantic_maps(empty))
    for key, value in losses.items():
        assert torch.isfinite(value), key
        if key.endswith(("_cls", "_seg")):
            assert value > 0, key
        else:
            assert value.item() == 0.0, key
    sum(losses.values()).backward()

    losses = model.loss(_with_semantic_maps(rectangles_batch()))
    for t in range(3):
        assert losses[f"loss_s{t}_mask"] > 0 and losses[f"loss_s{t}_cls"] > 0
    assert losses["loss_s0_bbox"] > 0 and losses["loss_semantic_seg"] > 0
    sum(losses.values()).backward()
    head = model.roi_head
    assert head.semantic_head.conv_logits.weight.grad.abs().sum() > 0
    assert head.mask_heads[1].conv_res.weight.grad.abs().sum() > 0


def test_missing_semantic_maps_are_a_clear_error():
    model = build(tiny_htc_cfg(with_semantic=True)).train()
    with pytest.raises(DetboxError, match="LoadAnnotations\\(with_seg=True\\)"):
        model.loss(rectangles_batch())


@pytest.mark.parametrize("interleaved", [True, False])
def test_interleaved_masks_train_on_the_refined_and_resampled_rois(monkeypatch, interleaved):
    calls = []
    sample = BoxBranch.sample

    def recording_sample(self, proposals, gts, samples):
        calls.append([p.boxes.clone() for p in proposals])
        return sample(self, proposals, gts, samples)

    monkeypatch.setattr(BoxBranch, "sample", recording_sample)
    model = build(tiny_htc_cfg(interleaved=interleaved)).train()
    model.loss(rectangles_batch())
    if interleaved:  # per stage: box sampling, then mask sampling of the refined RoIs
        assert len(calls) == 6
        for t in (0, 1):  # the mask stage's RoIs are the next box stage's proposals
            for a, b in zip(calls[2 * t + 1], calls[2 * t + 2]):
                assert torch.equal(a, b)
    else:
        assert len(calls) == 3


def test_test_masks_are_the_mean_of_the_stages_along_the_information_flow():
    model = build(tiny_htc_cfg()).eval()
    head = model.roi_head
    batch = rectangles_batch()
    with torch.no_grad():
        feats = model.extract_feat(batch.images)
        proposals = model.rpn_head.predict(feats, batch.samples)
        dets = head.predict(feats, proposals, batch.samples)
        rois = boxes_to_rois([d.boxes for d in dets])
        labels = torch.cat([d.labels for d in dets])
        x = head.mask_roi_extractor(feats, rois)
        probs, res = [], None
        for mask_head in head.mask_heads:  # written out: conv_res(prev feats) + RoI feats
            inp = x if res is None else x + F.relu(mask_head.conv_res(res))
            res = mask_head.convs(inp)
            logits = mask_head.predictor(F.relu(mask_head.upsample(res)))
            probs.append(logits[torch.arange(len(labels)), labels].sigmoid())
    expected = (probs[0] + probs[1] + probs[2]) / 3
    assert len(labels) > 0
    torch.testing.assert_close(torch.cat([d.masks for d in dets]), expected)


def test_semantic_targets_pad_with_ignore_and_sample_nearest():
    seg_a = torch.arange(12 * 10, dtype=torch.uint8).reshape(12, 10) % 7
    seg_b = torch.full((16, 16), 3, dtype=torch.uint8)
    samples = [DetSample(image_id=i, file_name="", ori_shape=s.shape, img_shape=s.shape,
                         gt_sem_seg=s) for i, s in enumerate((seg_a, seg_b))]
    targets = semantic_targets(samples, (4, 4), stride=4)  # the batch is padded to 16x16
    expected = torch.full((2, 4, 4), 255, dtype=torch.int64)
    for i, seg in enumerate((seg_a, seg_b)):
        for y in range(4):
            for x in range(4):  # nearest: the top-left pixel of each 4x4 cell
                if 4 * y < seg.shape[0] and 4 * x < seg.shape[1]:
                    expected[i, y, x] = int(seg[4 * y, 4 * x])
    assert torch.equal(targets, expected)


def test_semantic_head_shapes_and_loss_ignore_padding():
    torch.manual_seed(0)
    head = FusedSemanticHead(num_seg_classes=5, in_channels=8, num_levels=3, fusion_level=1,
                             num_convs=1, conv_channels=8, out_channels=6)
    feats = [torch.randn(2, 8, 16, 16), torch.randn(2, 8, 8, 8), torch.randn(2, 8, 4, 4)]
    logits, semantic = head(feats)
    assert logits.shape == (2, 5, 8, 8) and semantic.shape == (2, 6, 8, 8)
    samples = [DetSample(image_id=i, file_name="", ori_shape=(64, 64), img_shape=(64, 64),
                         gt_sem_seg=torch.full((64, 64), 255, dtype=torch.uint8))
               for i in range(2)]
    assert head.loss_by_outputs(logits, samples, stride=8)["loss_semantic_seg"].item() == 0.0
    samples[0].gt_sem_seg[:32] = 2
    loss = head.loss_by_outputs(logits, samples, stride=8)["loss_semantic_seg"]
    reference = F.cross_entropy(logits[0, :, :4].permute(1, 2, 0).reshape(-1, 5),
                                torch.full((32,), 2))
    torch.testing.assert_close(loss, 0.2 * reference)


def test_semantic_features_are_added_to_the_roi_features():
    extract = MultiLevelRoIExtractor(output_size=7, featmap_strides=(4,))
    semantic_extract = MultiLevelRoIExtractor(output_size=14, featmap_strides=(8,))
    feats = [torch.randn(1, 3, 16, 16)]
    rois = torch.tensor([[0.0, 4, 4, 40, 36], [0, 10, 0, 60, 60]])
    semantic = torch.full((1, 3, 8, 8), 2.5)
    semantic[0, 1] = -1.0
    fused = SemanticRoIFeatures(extract, semantic_extract, semantic)(feats, rois)
    plain = extract(feats, rois)
    assert fused.shape == plain.shape == (2, 3, 7, 7)
    torch.testing.assert_close(fused - plain, semantic[0, :, :1, :1].expand(3, 7, 7)
                               .expand(2, 3, 7, 7))


def test_predict_on_images_without_objects_and_with_no_detections():
    model = build(tiny_htc_cfg(with_semantic=True)).eval()
    batch = rectangles_batch(with_gt=False)
    batch.images.zero_()
    with torch.no_grad():
        results = model.predict(batch)
        model.roi_head.bbox_head.score_thr = 1.0
        nothing = model.predict(rectangles_batch())
    for result in results:
        assert result.masks is not None and result.masks.shape[1:] == (64, 64)
    for result in nothing:
        assert len(result) == 0 and result.masks.shape == (0, 64, 64)


def test_dataset_classes_fill_the_heads_but_not_the_semantic_classes():
    cfg = {"model": tiny_htc_cfg(with_semantic=True)}
    for head in ("bbox_head", "mask_head"):
        del cfg["model"]["roi_head"][head]["num_classes"]
    fill_num_classes(cfg, ["a", "b", "c"], source="test")
    model = build(cfg["model"])
    assert all(h.predictor.out_channels == 3 for h in model.roi_head.mask_heads)
    assert model.roi_head.semantic_head.conv_logits.out_channels == 4


def test_htc_with_semantic_trains_from_a_coco_dataset_with_semantic_maps(tmp_path):
    import numpy as np
    from PIL import Image

    from detbox.data import CocoDataset
    from detbox.data.collate import collate
    from tests.data.coco_factory import CATEGORIES, box_annotation, image_entry, write_coco

    images = [image_entry(1, width=60, height=50), image_entry(2, width=60, height=50)]
    anns = [box_annotation(1, 1, 1, [5, 5, 30, 25], segmentation=[[5, 5, 35, 5, 35, 30, 5, 30]]),
            box_annotation(2, 2, 2, [10, 8, 30, 30],
                           segmentation=[[10, 8, 40, 8, 40, 38, 10, 38]])]
    ann_file, img_dir = write_coco(tmp_path, images, anns, CATEGORIES)
    seg_dir = tmp_path / "maps"
    seg_dir.mkdir()
    for image in images:
        seg = np.zeros((50, 60), dtype=np.uint8)
        seg[10:30, 10:30] = 3
        Image.fromarray(seg).save(seg_dir / image["file_name"])
    pipeline = [{"type": "LoadImage"},
                {"type": "LoadAnnotations", "with_mask": True, "with_seg": True},
                {"type": "Resize", "scale": (80, 64), "keep_ratio": True},
                {"type": "RandomFlip", "prob": 0.5},
                {"type": "Normalize"}, {"type": "PackDetInputs"}]
    dataset = CocoDataset(ann_file, img_dir, pipeline, seg_prefix=seg_dir)
    batch = collate([dataset[0], dataset[1]])
    assert batch.samples[0].gt_sem_seg.shape == batch.samples[0].img_shape
    model = build(tiny_htc_cfg(with_semantic=True)).train()
    losses = model.loss(batch)
    assert losses["loss_semantic_seg"] > 0 and all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
