"""Tiny SSD models and configs for the SSD tests (narrow VGG / MobileNetV3, real geometry)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import torch

from detbox.apis.build import build_detector
from detbox.config import ConfigDict
from detbox.engine.checkpoint import save_checkpoint
from tests.tiny_detector import CAT_IDS, CLASS_NAMES

# SSD300's geometry (8,732 priors on a 300 px input) at 1/16 of VGG-16's widths.
TINY_SSD300 = {
    "type": "SSD",
    "backbone": {"type": "SSDVGG", "width_mult": 0.0625},
    "bbox_head": {"type": "SSDHead", "num_classes": 3, "max_per_img": 50},
}
TINY_SSDLITE = {
    "type": "SSD",
    "backbone": {"type": "SSDMobileNetV3", "width_mult": 0.25, "reduced_tail": True},
    "bbox_head": {
        "type": "SSDHead", "num_classes": 3, "depthwise": True, "max_per_img": 50,
        "prior_generator": {"type": "SSDPriorGenerator", "aspect_ratios": [[2, 3]] * 6,
                            "min_ratio": 0.2, "max_ratio": 0.95},
    },
}
IMG_NORM = {"mean": [123.675, 116.28, 103.53], "std": [58.395, 57.12, 57.375]}


def pipeline(size: int = 300, with_annotations: bool = False) -> list[dict]:
    steps = [{"type": "LoadImage"},
             {"type": "Resize", "scale": (size, size), "keep_ratio": False},
             {"type": "Normalize", **IMG_NORM}, {"type": "PackDetInputs"}]
    if with_annotations:
        steps.insert(1, {"type": "LoadAnnotations"})
    return steps


def tiny_ssd_config(model: dict | None = None, size: int = 300) -> ConfigDict:
    """A config with the tiny SSD, its test pipeline and a 4-image synthetic test split."""
    return ConfigDict(copy.deepcopy({
        "model": model or TINY_SSD300,
        "test_pipeline": pipeline(size),
        "test_dataloader": {
            "batch_size": 2, "num_workers": 0, "size_divisor": 1,
            "dataset": {"type": "SyntheticShapesDataset", "split": "val", "num_images": 4,
                        "image_size": 64, "pipeline": pipeline(size, True), "test_mode": True},
        },
    }))


def build_tiny_ssd(model: dict | None = None, seed: int = 0) -> torch.nn.Module:
    """The tiny SSD in eval mode. Batch norms (SSDlite) take their statistics from one pass
    over random images: with the initial ones the maps fade away and every score ties."""
    torch.manual_seed(seed)
    detector = build_detector(copy.deepcopy(model or TINY_SSD300), CLASS_NAMES, CAT_IDS)
    norms = [m for m in detector.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    if norms:
        for norm in norms:
            norm.momentum = 1.0
        with torch.no_grad():
            detector.train().forward(torch.randn(2, 3, 320, 320))
        for norm in norms:
            norm.momentum = 0.03
    return detector.eval()


def write_tiny_ssd(folder: Path, model: dict | None = None, size: int = 300) -> tuple[Path, Path]:
    """``tiny_ssd.json`` and ``tiny_ssd.pth`` (random weights) in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "tiny_ssd.json"
    config.write_text(json.dumps(tiny_ssd_config(model, size)))
    checkpoint = save_checkpoint(folder / "tiny_ssd.pth", model=build_tiny_ssd(model), epoch=1,
                                 iteration=1,
                                 meta={"class_names": CLASS_NAMES, "cat_ids": CAT_IDS})
    return config, checkpoint
