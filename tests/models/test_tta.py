"""Test-time augmentation: views map back to the original image, merging, config switch."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torchvision.ops import box_iou

from detbox.apis.tta import (
    TTADetector,
    merge_detections,
    tta_settings,
    tta_test_section,
    weighted_box_fusion,
    wrap_for_tta,
)
from detbox.config import ConfigDict, load_config
from detbox.errors import ConfigError
from detbox.models.detectors import rescale_to_original
from detbox.registry import MODELS
from detbox.structures import DetSample, ImageBatch, Instances

from ._helpers import make_sample, rectangle_image, tiny_retinanet_cfg


class BrightBoxDetector(nn.Module):
    """'Detects' the bright rectangle of each view in view coordinates, then maps it back with
    ``rescale_to_original`` like every detector's ``predict``; remembers the views it saw."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[DetSample] = []

    def predict(self, batch: ImageBatch) -> list[Instances]:
        results = []
        for image, sample in zip(batch.images, batch.samples):
            self.seen.append(sample)
            height, width = sample.img_shape
            ys, xs = torch.nonzero(image[0, :height, :width] > 0.5, as_tuple=True)
            box = torch.tensor([[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]],
                               dtype=torch.float32)
            found = Instances(boxes=box, labels=torch.tensor([0]), scores=torch.tensor([0.9]))
            results.append(rescale_to_original(found, sample))
        return results


def _padded_batch() -> tuple[ImageBatch, list[list[float]]]:
    """Two images at their original size, zero-padded into one (2, 3, 64, 96) batch."""
    boxes = [[10, 12, 40, 30], [50, 20, 66, 44]]
    images = torch.zeros(2, 3, 64, 96)
    images[0, :, 12:30, 10:40] = 1.0
    images[1, :, 20:44, 50:66] = 1.0
    samples = [
        DetSample(image_id=0, file_name="a.png", ori_shape=(60, 80), img_shape=(60, 80)),
        DetSample(image_id=1, file_name="b.png", ori_shape=(50, 70), img_shape=(50, 70)),
    ]
    return ImageBatch(images=images, samples=samples), [[float(v) for v in b] for b in boxes]


@pytest.mark.parametrize("merge", ["nms", "wbf"])
def test_every_view_maps_back_to_the_original_box(merge: str) -> None:
    batch, expected = _padded_batch()
    detector = BrightBoxDetector()
    # Scale (160, 120) doubles both images, (40, 30) halves the first: exact for even edges.
    tta = TTADetector(detector, scales=[(160, 120), (40, 30)], flip=True, merge=merge)
    assert tta.num_views == 4
    merged = tta.predict(batch)
    assert torch.allclose(merged[0].boxes, torch.tensor([expected[0]]), atol=1e-4)
    # 70 x 50 at (160, 120) scales by 160 / 70 (not a whole number): sub-pixel differences
    assert torch.allclose(merged[1].boxes, torch.tensor([expected[1]]), atol=0.5)
    assert {s.flip for s in detector.seen} == {None, "horizontal"}
    first = [s for s in detector.seen if s.image_id == 0]
    assert sorted({s.img_shape for s in first}) == [(30, 40), (120, 160)]
    assert sorted({s.scale_factor for s in first}) == [(0.5, 0.5), (2.0, 2.0)]


def test_flip_only_views_keep_the_pipeline_scale() -> None:
    image = torch.zeros(1, 3, 128, 160)
    image[0, :, 24:60, 20:80] = 1.0  # the rectangle (10, 12, 40, 30) of a 60x80 image, x2
    sample = DetSample(image_id=0, file_name="a.png", ori_shape=(60, 80), img_shape=(120, 160),
                       scale_factor=(2.0, 2.0))
    detector = BrightBoxDetector()
    tta = TTADetector(detector, flip=True, flip_direction="vertical")
    (merged,) = tta.predict(ImageBatch(images=image, samples=[sample]))
    assert merged.boxes.tolist() == [[10.0, 12.0, 40.0, 30.0]]
    assert [s.flip for s in detector.seen] == [None, "vertical"]
    assert all(s.img_shape == (120, 160) and s.scale_factor == (2.0, 2.0) for s in detector.seen)


def _dets(boxes, scores, labels, masks: bool = False) -> Instances:
    n = len(boxes)
    return Instances(
        boxes=torch.tensor(boxes, dtype=torch.float32), scores=torch.tensor(scores),
        labels=torch.tensor(labels),
        masks=torch.arange(n).view(n, 1, 1).expand(n, 4, 4).clone() if masks else None,
    )


def test_nms_merge_is_class_wise_and_keeps_the_best_detection_with_its_mask() -> None:
    view_a = _dets([[0, 0, 10, 10], [0, 0, 10, 10]], [0.9, 0.8], [0, 1], masks=True)
    view_b = _dets([[1, 0, 11, 10], [30, 30, 40, 40]], [0.95, 0.5], [0, 0], masks=True)
    merged = merge_detections([view_a, view_b], "nms", iou_thr=0.5)
    assert merged.boxes.tolist() == [[1, 0, 11, 10], [0, 0, 10, 10], [30, 30, 40, 40]]
    assert merged.labels.tolist() == [0, 1, 0]
    assert merged.masks[:, 0, 0].tolist() == [0, 1, 1]  # each kept detection's own mask
    assert len(merge_detections([view_a, view_b], "nms", max_per_img=2)) == 2


def test_weighted_box_fusion_averages_by_score() -> None:
    dets = _dets([[0, 0, 10, 10], [2, 0, 12, 10], [30, 30, 40, 40]], [0.6, 0.2, 0.4], [0, 0, 0])
    fused = weighted_box_fusion(dets, num_views=2, iou_thr=0.5)
    assert fused.boxes[0].tolist() == pytest.approx([0.5, 0, 10.5, 10])  # (0.6*0 + 0.2*2) / 0.8
    assert fused.scores.tolist() == pytest.approx([0.4, 0.2])  # 0.8 / 2 views; 0.4 / 2
    empty = merge_detections([Instances.empty(with_scores=True)] * 2, "wbf")
    assert len(empty) == 0


def test_tta_settings_follow_the_config_and_the_flag(tmp_path) -> None:
    assert tta_settings({}, None) is None and tta_settings({"tta": {"flip": True}}, False) is None
    flip_only = tta_settings({}, True)
    assert flip_only["scales"] is None and flip_only["flip"] is True
    cfg_file = tmp_path / "cfg.py"
    cfg_file.write_text("tta = dict(scales=[(1333, 640), (1333, 800)], flip=True, "
                        "merge_iou_thr=0.6)\n")
    settings = tta_settings(load_config(cfg_file))
    assert settings["merge_iou_thr"] == 0.6 and len(settings["scales"]) == 2
    with pytest.raises(ConfigError, match="merge_iou_thr"):
        tta_settings({"tta": {"merge_iou": 0.5}})
    with pytest.raises(ConfigError, match="merge"):
        TTADetector(BrightBoxDetector(), merge="vote")


def test_multi_scale_tta_leaves_out_the_pipeline_resize() -> None:
    pipeline = [{"type": "LoadImage"}, {"type": "Resize", "scale": (1333, 800)},
                {"type": "Normalize"}, {"type": "PackDetInputs"}]
    section = {"batch_size": 1, "dataset": {"type": "CocoDataset", "pipeline": pipeline}}
    multi = tta_settings({"tta": {"scales": [(1333, 800)]}})
    kept = [s["type"] for s in tta_test_section(section, multi)["dataset"]["pipeline"]]
    assert kept == ["LoadImage", "Normalize", "PackDetInputs"]
    assert len(section["dataset"]["pipeline"]) == 4  # the config itself is untouched
    flip_only = tta_settings({}, True)
    assert len(tta_test_section(section, flip_only)["dataset"]["pipeline"]) == 4

    model = BrightBoxDetector()
    model.cfg = ConfigDict({"test_pipeline": pipeline})
    model.dataset_meta = {"class_names": ["a"], "cat_ids": [1]}
    wrapped = wrap_for_tta(model, multi)
    assert [s["type"] for s in wrapped.cfg["test_pipeline"]] == kept
    assert wrapped.dataset_meta == model.dataset_meta and len(model.cfg["test_pipeline"]) == 4
    with pytest.raises(TypeError, match="inference"):
        wrapped.loss(None)


def test_tta_changes_the_results_of_a_briefly_trained_model() -> None:
    torch.manual_seed(0)
    cfg = tiny_retinanet_cfg()
    cfg["bbox_head"]["score_thr"] = 0.01  # ten steps leave the scores low
    model = MODELS.build(cfg).train()
    train = ImageBatch(images=rectangle_image((16, 16, 48, 48)),
                       samples=[make_sample([[16.0, 16, 48, 48]], [1])])
    optimizer = torch.optim.SGD(model.parameters(), lr=0.005, momentum=0.9)
    for _ in range(10):
        losses = model.loss(train)
        optimizer.zero_grad()
        (losses["loss_cls"] + losses["loss_bbox"]).backward()
        optimizer.step()
    model.eval()
    target = torch.tensor([[8.0, 20, 40, 56]])
    test = ImageBatch(images=rectangle_image((8, 20, 40, 56)), samples=[make_sample()])
    with torch.no_grad():
        (plain,) = model.predict(test)
        (augmented,) = TTADetector(model, scales=[(64, 64), (96, 96)], flip=True).predict(test)
    assert len(plain) > 0 and len(augmented) > 0
    assert augmented.boxes.min() >= 0 and augmented.boxes.max() <= 64
    top_plain = plain.boxes[plain.scores.argmax()][None]
    top_augmented = augmented.boxes[augmented.scores.argmax()][None]
    # Both find the object (a wrong mapping back would miss it); ten steps of training do not
    # make TTA better, only different.
    assert box_iou(top_plain, target) > 0.5 and box_iou(top_augmented, target) > 0.25
    assert (top_plain - top_augmented).abs().max() > 0.5 or abs(
        float(plain.scores.max() - augmented.scores.max())) > 1e-3


@pytest.mark.parametrize("merge", ["nms", "wbf"])
def test_mask_detector_views_merge_into_masks_at_the_original_size(merge: str) -> None:
    from .two_stage._tiny import build, rectangles_batch, tiny_two_stage_cfg, train_steps

    model = build(tiny_two_stage_cfg("mask"))
    train_steps(model, rectangles_batch(), steps=1)
    model.eval()
    batch = rectangles_batch(with_gt=False)
    with torch.no_grad():
        merged = TTADetector(model, flip=True, merge=merge, max_per_img=10).predict(batch)
    assert len(merged) == 2 and any(len(m) > 0 for m in merged)
    for result in merged:
        assert len(result) <= 10 and result.masks.dtype == torch.bool
        assert result.masks.shape == (len(result), 64, 64)
