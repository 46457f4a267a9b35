"""build_dataset / build_dataloader from config sections, with reproducible augmentations."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from coco_factory import CATEGORIES, image_entry

from detbox.data import DetDataLoader, SyntheticShapesDataset, build_dataloader, build_dataset
from detbox.errors import ConfigError, DatasetError
from detbox.structures import ImageBatch

PIPELINE = [
    {"type": "LoadImage"},
    {"type": "LoadAnnotations", "with_mask": True},
    {"type": "Resize", "scale": [(80, 48), (80, 64)]},
    {"type": "RandomFlip", "prob": 0.5},
    {"type": "Normalize"},
    {"type": "PackDetInputs"},
]


@pytest.fixture(scope="module")
def shapes_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("shapes")


def _section(root: Path, **kwargs) -> dict:
    dataset = {"type": "SyntheticShapesDataset", "num_images": 16, "image_size": 64,
               "max_size": 32, "root": str(root), "pipeline": PIPELINE}
    return {"batch_size": 4, "num_workers": 0, "dataset": dataset, **kwargs}


def _epoch_signature(loader: DetDataLoader, epoch: int) -> list[tuple]:
    loader.set_epoch(epoch)
    return [(s.image_id, s.flip, s.img_shape) for batch in loader for s in batch.samples]


def test_training_loader_yields_image_batches(shapes_root: Path) -> None:
    loader = build_dataloader(_section(shapes_root), training=True, seed=0)
    assert isinstance(loader, DetDataLoader) and len(loader) == 4
    batch = next(iter(loader))
    assert isinstance(batch, ImageBatch) and batch.images.shape[0] == 4
    assert batch.images.shape[-1] % 32 == 0 and batch.images.shape[-2] % 32 == 0
    for image, sample in zip(batch.images, batch.samples):
        h, w = sample.img_shape
        assert sample.gt.masks.shape[-2:] == (h, w)
        assert image[:, h:].abs().sum() == 0


def test_inference_loader_keeps_dataset_order(shapes_root: Path) -> None:
    loader = build_dataloader(_section(shapes_root, batch_size=5), training=False)
    ids = [s.image_id for batch in loader for s in batch.samples]
    assert ids == list(range(1, 17)) and len(loader) == 4


def test_worker_augmentations_are_reproducible_per_epoch(shapes_root: Path) -> None:
    section = _section(shapes_root, num_workers=2)
    first = build_dataloader(section, training=True, seed=7)
    second = build_dataloader(section, training=True, seed=7)
    run = [_epoch_signature(first, epoch) for epoch in range(2)]
    assert _epoch_signature(second, 1) == run[1]  # resumed at epoch 1
    assert run[0] != run[1]
    flips = {flip for _, flip, _ in run[0] + run[1]}
    assert flips == {None, "horizontal"}
    torch.manual_seed(123)  # global state must not matter
    assert _epoch_signature(second, 0) == run[0]


def test_unknown_and_missing_keys_are_config_errors(shapes_root: Path) -> None:
    with pytest.raises(ConfigError, match="'batch_szie'.*'batch_size'"):
        build_dataloader(_section(shapes_root, batch_szie=2), training=True)
    with pytest.raises(ConfigError, match="dataset"):
        build_dataloader({"batch_size": 2}, training=False)
    bad_dataset = _section(shapes_root)
    bad_dataset["dataset"]["num_imgs"] = 3
    with pytest.raises(ConfigError, match="'num_imgs'"):
        build_dataloader(bad_dataset, training=True)


def test_build_dataset_passes_built_objects_through(shapes_root: Path) -> None:
    dataset = build_dataset(_section(shapes_root)["dataset"])
    assert isinstance(dataset, SyntheticShapesDataset) and build_dataset(dataset) is dataset
    loader = build_dataloader({"batch_size": 8, "num_workers": 0, "dataset": dataset},
                              training=True, rank=1, world_size=2)
    assert len(loader) == 1 and len(next(iter(loader))) == 8


def test_empty_training_set_is_an_error(make_coco) -> None:
    ann_file, img_dir = make_coco([image_entry(1)], [], CATEGORIES)
    dataset = {"type": "CocoDataset", "ann_file": str(ann_file), "img_dir": str(img_dir),
               "filter_empty": True}
    with pytest.raises(DatasetError, match="no images to train on"):
        build_dataloader({"dataset": dataset}, training=True)


def test_pin_memory_follows_cuda_unless_set(shapes_root: Path, monkeypatch) -> None:
    section = _section(shapes_root)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert build_dataloader(section, training=True).pin_memory is False
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert build_dataloader(section, training=True).pin_memory is True
    assert build_dataloader({**section, "pin_memory": False}, training=True).pin_memory is False


def test_worker_options_reach_the_loader(shapes_root: Path) -> None:
    loader = build_dataloader(_section(shapes_root, num_workers=2, prefetch_factor=4,
                                       persistent_workers=True), training=True)
    assert loader.num_workers == 2 and loader.prefetch_factor == 4
    assert loader.persistent_workers is True
    single = build_dataloader(_section(shapes_root, persistent_workers=True), training=True)
    assert single.persistent_workers is False  # no workers to keep
    with pytest.raises(ConfigError, match="prefetch_factor needs num_workers > 0"):
        build_dataloader(_section(shapes_root, prefetch_factor=4), training=True)


def test_image_batch_pins_every_tensor(shapes_root: Path, monkeypatch) -> None:
    pinned = []

    def fake_pin(tensor: torch.Tensor, *args) -> torch.Tensor:  # no CUDA needed
        copy = tensor.clone()
        pinned.append(copy)
        return copy

    batch = next(iter(build_dataloader(_section(shapes_root), training=True)))
    monkeypatch.setattr(torch.Tensor, "pin_memory", fake_pin)
    result = batch.pin_memory()
    assert isinstance(result, ImageBatch) and result.images is pinned[0]
    assert torch.equal(result.images, batch.images)
    for sample, original in zip(result.samples, batch.samples):
        assert any(sample.gt.boxes is p for p in pinned)
        assert any(sample.ignored_boxes is p for p in pinned)
        assert torch.equal(sample.gt.boxes, original.gt.boxes)
        assert sample.image_id == original.image_id and sample.img_shape == original.img_shape
