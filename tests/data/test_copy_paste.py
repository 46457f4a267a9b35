"""Simple Copy-Paste: pasted pixels come from the source, covered objects lose exactly those
pixels, boxes follow the masks, and hidden objects go with their labels."""

from __future__ import annotations

import random

import pytest
import torch

from detbox.data import MultiImageMixDataset, build_dataloader
from detbox.data.transforms import CopyPaste, mask_boxes
from detbox.errors import ConfigError

H, W = 60, 80


def _sample(rects: list[tuple[int, int, int, int]], labels: list[int], seed: int) -> dict:
    """A textured image whose objects are the given rectangles (boxes = mask bounds)."""
    generator = torch.Generator().manual_seed(seed)
    image = torch.randint(0, 256, (3, H, W), generator=generator, dtype=torch.uint8)
    masks = torch.zeros((len(rects), H, W), dtype=torch.uint8)
    for i, (x1, y1, x2, y2) in enumerate(rects):
        masks[i, y1:y2, x1:x2] = 1
    return {"img": image, "img_shape": (H, W), "ori_shape": (H, W),
            "gt_boxes": torch.tensor(rects, dtype=torch.float32).reshape(-1, 4),
            "gt_labels": torch.tensor(labels, dtype=torch.int64),
            "gt_masks": masks, "ignored_boxes": torch.zeros((0, 4))}


# A: half covered (x 20..40 of 0..40), B: fully covered, C: untouched; S covers x 20..65.
DEST = ([(0, 0, 40, 30), (50, 10, 60, 20), (60, 40, 78, 58)], [0, 1, 2])
SOURCE = ([(20, 0, 65, 30)], [3])


def _paste(**kwargs) -> tuple[dict, dict, dict]:
    dest, source = _sample(*DEST, seed=1), _sample(*SOURCE, seed=2)
    original = {k: v.clone() if torch.is_tensor(v) else v for k, v in dest.items()}
    dest["mix_results"] = [source]
    out = CopyPaste(select_random=False, **kwargs)(dest)
    return out, original, source


def test_pasted_pixels_come_from_the_source_and_the_rest_stays() -> None:
    out, original, source = _paste()
    cover = source["gt_masks"][0].bool()
    assert torch.equal(out["img"][:, cover], source["img"][:, cover])
    assert torch.equal(out["img"][:, ~cover], original["img"][:, ~cover])
    assert out["img"].dtype == torch.uint8


def test_covered_masks_lose_exactly_the_pasted_pixels_and_hidden_objects_go() -> None:
    out, original, source = _paste()
    cover = source["gt_masks"][0].bool()
    assert out["gt_labels"].tolist() == [0, 2, 3]  # B (label 1) was fully covered
    assert torch.equal(out["gt_masks"][0], original["gt_masks"][0] * ~cover)
    assert torch.equal(out["gt_masks"][1], original["gt_masks"][2])
    assert torch.equal(out["gt_masks"][2], source["gt_masks"][0])
    assert out["gt_boxes"].tolist() == [[0, 0, 20, 30], [60, 40, 78, 58], [20, 0, 65, 30]]
    assert torch.equal(out["gt_boxes"], mask_boxes(out["gt_masks"]))


@pytest.mark.parametrize("kwargs", [dict(max_occluded=0.4), dict(min_area=601)])
def test_occlusion_thresholds_drop_the_half_covered_object(kwargs: dict) -> None:
    # A keeps 600 of its 1200 pixels: 50 % covered
    out, _, _ = _paste(**kwargs)
    assert out["gt_labels"].tolist() == [2, 3]
    assert len(out["gt_masks"]) == len(out["gt_boxes"]) == 2
    assert _paste(max_occluded=0.5, min_area=600)[0]["gt_labels"].tolist() == [0, 2, 3]


def test_scale_jitter_shrinks_the_source_and_boxes_follow_masks() -> None:
    out, original, _ = _paste(scale_range=(0.5, 0.5))
    pasted = out["gt_masks"][-1].bool()
    # S (20..65 x 0..30) at half size: x 10..33, y 0..15 (nearest sampling)
    assert out["gt_boxes"][-1].tolist() == mask_boxes(pasted[None].byte())[0].tolist()
    x1, y1, x2, y2 = out["gt_boxes"][-1].tolist()
    assert (y1, y2) == (0, 15) and abs(x1 - 10) <= 1 and abs(x2 - 32.5) <= 1
    assert torch.equal(out["gt_masks"][0], original["gt_masks"][0] * ~pasted)
    assert out["gt_labels"].tolist() == [0, 1, 2, 3]  # B is not reached any more


def test_random_subset_and_probability() -> None:
    dest, source = _sample(*DEST, seed=1), _sample(DEST[0], [4, 5, 6], seed=2)
    random.seed(0)
    counts = set()
    for _ in range(20):
        sample = {**dest, "mix_results": [source]}
        counts.add(int((CopyPaste()(sample)["gt_labels"] >= 4).sum()))
    assert counts <= {1, 2, 3} and len(counts) > 1
    sample = {**dest, "mix_results": [source]}
    assert CopyPaste(prob=0.0)(sample)["gt_labels"].tolist() == [0, 1, 2]


def test_empty_source_or_empty_destination() -> None:
    empty = _sample([], [], seed=3)
    out = CopyPaste()({**_sample(*DEST, seed=1), "mix_results": [empty]})
    assert out["gt_labels"].tolist() == [0, 1, 2]
    out = CopyPaste(select_random=False)({**_sample([], [], seed=3),
                                          "mix_results": [_sample(*SOURCE, seed=2)]})
    assert out["gt_labels"].tolist() == [3]
    assert out["gt_boxes"].tolist() == [[20, 0, 65, 30]]


def test_semantic_map_takes_the_source_labels_under_the_paste() -> None:
    dest, source = _sample(*DEST, seed=1), _sample(*SOURCE, seed=2)
    dest["gt_seg"] = torch.full((H, W), 7, dtype=torch.uint8)
    source["gt_seg"] = torch.full((H, W), 9, dtype=torch.uint8)
    out = CopyPaste(select_random=False)({**dest, "mix_results": [source]})
    cover = source["gt_masks"][0].bool()
    assert (out["gt_seg"][cover] == 9).all() and (out["gt_seg"][~cover] == 7).all()


def test_misuse_gives_clear_errors() -> None:
    with pytest.raises(ConfigError, match="MultiImageMixDataset"):
        CopyPaste()(_sample(*DEST, seed=1))
    no_masks = _sample(*DEST, seed=1)
    del no_masks["gt_masks"]
    with pytest.raises(ConfigError, match="with_mask=True"):
        CopyPaste()({**no_masks, "mix_results": [_sample(*SOURCE, seed=2)]})
    with pytest.raises(ConfigError, match="scale_range"):
        CopyPaste(scale_range=(2.0, 1.0))


def _synthetic(tmp_path, pipeline) -> dict:
    return dict(type="SyntheticShapesDataset", num_images=4, image_size=64, root=str(tmp_path),
                pipeline=pipeline)


def test_mix_dataset_feeds_copy_paste_and_batches(tmp_path) -> None:
    loading = [dict(type="LoadImage"), dict(type="LoadAnnotations", with_mask=True)]
    section = dict(batch_size=2, num_workers=0, dataset=dict(
        type="MultiImageMixDataset", dataset=_synthetic(tmp_path, loading),
        pipeline=[dict(type="CopyPaste", min_area=1), dict(type="RandomFlip", prob=0.5),
                  dict(type="Normalize", mean=[0, 0, 0], std=[1, 1, 1]),
                  dict(type="PackDetInputs")]))
    loader = build_dataloader(section, seed=0, training=True)
    dataset = loader.dataset
    assert len(dataset) == 4 and dataset.class_names and dataset.coco is not None
    _, sample = dataset[0]
    assert len(sample.gt) >= 1 and sample.gt.masks.shape[0] == len(sample.gt)
    assert torch.equal(sample.gt.boxes, mask_boxes(sample.gt.masks))
    samples = next(iter(loader)).samples
    assert len(samples) == 2 and all(len(s.gt) >= 1 for s in samples)


def test_mix_dataset_refuses_a_packing_inner_pipeline(tmp_path) -> None:
    dataset = MultiImageMixDataset(dataset=_synthetic(tmp_path, None), pipeline=[])
    with pytest.raises(ConfigError, match="before PackDetInputs"):
        dataset[0]


def test_tiny_mask_rcnn_trains_on_copy_paste_batches(tmp_path) -> None:
    import detbox.models  # noqa: F401  (registers the detectors)
    from tests.models.two_stage._tiny import build, tiny_two_stage_cfg, train_steps

    loading = [dict(type="LoadImage"), dict(type="LoadAnnotations", with_mask=True)]
    section = dict(batch_size=2, num_workers=0, dataset=dict(
        type="MultiImageMixDataset", dataset=_synthetic(tmp_path, loading),
        pipeline=[dict(type="CopyPaste", scale_range=(0.5, 1.5)),
                  dict(type="Normalize", mean=[127, 127, 127], std=[64, 64, 64]),
                  dict(type="PackDetInputs")]))
    model = build(tiny_two_stage_cfg("mask", num_classes=3))
    for batch in build_dataloader(section, seed=0, training=True):
        history = train_steps(model, batch, steps=2)
        assert all(torch.isfinite(torch.tensor(list(h.values()))).all() for h in history)
        assert history[-1]["loss_mask"] > 0


def test_mix_dataset_passes_an_unreadable_image_report_through() -> None:
    from torch.utils.data import Dataset

    from detbox.data.skipping import UnreadableImage

    class Broken(Dataset):
        def __len__(self) -> int:
            return 2

        def __getitem__(self, index: int):
            return UnreadableImage("a.png", "truncated", 1)

    out = MultiImageMixDataset(dataset=Broken(), pipeline=[dict(type="CopyPaste")])[0]
    assert isinstance(out, UnreadableImage) and out.reason == "truncated"


@pytest.mark.parametrize("dest_float, source_float", [(True, False), (False, True),
                                                      (True, True)])
def test_float_and_uint8_images_mix(dest_float: bool, source_float: bool) -> None:
    dest, source = _sample(*DEST, seed=1), _sample(*SOURCE, seed=2)
    expected = source["img"].clone()
    if dest_float:
        dest["img"] = dest["img"].float()
    if source_float:
        source["img"] = source["img"].float()
    out = CopyPaste(select_random=False)({**dest, "mix_results": [source]})
    cover = source["gt_masks"][0].bool()
    assert out["img"].dtype == (torch.float32 if dest_float else torch.uint8)
    assert torch.equal(out["img"][:, cover].float(), expected[:, cover].float())
    scaled = CopyPaste(select_random=False, scale_range=(0.7, 0.7))(
        {**dest, "mix_results": [source]})
    assert scaled["img"].dtype == out["img"].dtype and scaled["img"].shape == (3, H, W)


def test_mask_boxes_against_a_plain_loop() -> None:
    generator = torch.Generator().manual_seed(0)
    masks = (torch.rand((6, 17, 23), generator=generator) > 0.97).to(torch.uint8)
    masks[2] = 0  # an empty mask
    masks[3, 16, 22] = 1  # a pixel in the last row and column

    def reference(mask: torch.Tensor) -> list[float]:
        ys, xs = torch.nonzero(mask, as_tuple=True)
        if len(ys) == 0:
            return [0.0, 0.0, 0.0, 0.0]
        return [float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)]

    assert mask_boxes(masks).tolist() == [reference(m) for m in masks]
    assert torch.equal(mask_boxes(masks.bool()), mask_boxes(masks))
    assert mask_boxes(masks[:0]).shape == (0, 4)
