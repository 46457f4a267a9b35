"""Tiny detectors, configs and checkpoints for the tool, API and tools-CLI tests.

The weights are random but the classification layers are re-drawn so that scores spread over
(0, 1) and many boxes survive the thresholds: parity and drawing tests then compare hundreds of
detections instead of none.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import torch

from detbox.apis.build import build_detector
from detbox.config import ConfigDict
from detbox.engine.checkpoint import save_checkpoint

CLASS_NAMES = ["circle", "square", "triangle"]  # the synthetic shapes dataset's classes
CAT_IDS = [1, 2, 3]

IMG_NORM = {"mean": [123.675, 116.28, 103.53], "std": [58.395, 57.12, 57.375]}
TEST_PIPELINE = [
    {"type": "LoadImage"},
    {"type": "Resize", "scale": (96, 96), "keep_ratio": True},
    {"type": "Normalize", **IMG_NORM},
    {"type": "PackDetInputs"},
]

BACKBONE = {"type": "ResNet", "depth": 18, "out_indices": (1, 2, 3), "frozen_stages": -1,
            "norm": "GN", "norm_eval": False}

RETINANET = {
    "type": "RetinaNet",
    "backbone": BACKBONE,
    "neck": {"type": "FPN", "in_channels": [128, 256, 512], "out_channels": 16, "num_outs": 4,
             "extra_convs": "input"},
    "bbox_head": {
        "type": "RetinaHead", "in_channels": 16, "feat_channels": 16, "stacked_convs": 1,
        "anchor_generator": {"type": "AnchorGenerator", "strides": [8, 16, 32, 64],
                             "octave_base_scale": 2, "scales_per_octave": 2,
                             "ratios": [0.5, 1.0, 2.0]},
        "nms_pre": 200, "max_per_img": 50,
    },
}


def two_stage_model(kind: str = "FasterRCNN") -> dict:
    """A tiny FPN Faster R-CNN (or Mask R-CNN with ``kind='MaskRCNN'``)."""
    roi_head = {
        "type": "StandardRoIHead",
        "bbox_roi_extractor": {"type": "MultiLevelRoIExtractor", "output_size": 7,
                               "featmap_strides": [4, 8, 16, 32]},
        "bbox_head": {"type": "Shared2FCBBoxHead", "in_channels": 16, "fc_channels": 32,
                      "max_per_img": 50},
    }
    if kind == "MaskRCNN":
        roi_head["mask_head"] = {"type": "FCNMaskHead", "in_channels": 16, "num_convs": 1,
                                 "conv_channels": 16}
    return {
        "type": kind,
        "backbone": {**BACKBONE, "out_indices": (0, 1, 2, 3)},
        "neck": {"type": "FPN", "in_channels": [64, 128, 256, 512], "out_channels": 16,
                 "num_outs": 5, "extra_convs": None},
        "rpn_head": {
            "type": "RPNHead", "in_channels": 16, "feat_channels": 16,
            "anchor_generator": {"type": "AnchorGenerator", "strides": [4, 8, 16, 32, 64],
                                 "ratios": [0.5, 1.0, 2.0], "scales": [4]},
            "test_proposals": {"nms_pre": 150, "max_per_img": 60},
        },
        "roi_head": roi_head,
    }


def tiny_config(model: dict | None = None, with_data: bool = False) -> ConfigDict:
    """A config with the tiny model and the test pipeline; ``with_data`` adds a 4-image
    synthetic test split (64 px) so that ``detbox test`` can run on it."""
    cfg = {"model": copy.deepcopy(model or RETINANET), "test_pipeline": TEST_PIPELINE}
    if with_data:
        pipeline = [TEST_PIPELINE[0], {"type": "LoadAnnotations"}, *TEST_PIPELINE[1:]]
        cfg["test_dataloader"] = {
            "batch_size": 2, "num_workers": 0,
            "dataset": {"type": "SyntheticShapesDataset", "split": "val", "num_images": 4,
                        "image_size": 64, "pipeline": pipeline, "test_mode": True},
        }
    return ConfigDict(copy.deepcopy(cfg))


def make_lively(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Re-draw the scoring layers so that scores are spread out (see the module docstring)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        if hasattr(model, "bbox_head"):
            layer = model.bbox_head.cls_logits
            layer.bias.copy_(torch.randn(layer.bias.shape, generator=generator) * 0.5 - 1.0)
        else:
            for layer in (model.rpn_head.cls_logits, model.roi_head.bbox_head.fc_cls):
                layer.weight.copy_(torch.randn(layer.weight.shape, generator=generator) * 0.5)
    return model


def build_tiny(cfg: ConfigDict, seed: int = 0) -> torch.nn.Module:
    """The config's model with the synthetic classes, lively random weights, in eval mode."""
    from detbox.apis.build import fill_num_classes

    torch.manual_seed(seed)
    fill_num_classes(cfg, CLASS_NAMES, source="the test")
    model = make_lively(build_detector(cfg.model, CLASS_NAMES, CAT_IDS), seed)
    model.cfg = cfg
    return model.eval()


def write_tiny(folder: Path, model_cfg: dict | None = None, with_data: bool = False,
               name: str = "tiny", init=None) -> tuple[Path, Path]:
    """Write ``<name>.json`` (config) and ``<name>.pth`` (a training checkpoint, optimizer
    included) into ``folder``; returns both paths. ``init(model)``, when given, changes the
    weights before they are saved."""
    folder.mkdir(parents=True, exist_ok=True)
    cfg = tiny_config(model_cfg, with_data)
    config_path = folder / f"{name}.json"
    config_path.write_text(json.dumps(cfg))
    model = build_tiny(tiny_config(model_cfg, with_data))
    if init is not None:
        init(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    for param in model.parameters():  # zero gradients: momentum buffers, unchanged weights
        param.grad = torch.zeros_like(param)
    optimizer.step()
    checkpoint = save_checkpoint(
        folder / f"{name}.pth", model=model, optimizer=optimizer, epoch=1, iteration=10,
        meta={"class_names": CLASS_NAMES, "cat_ids": CAT_IDS},
    )
    return config_path, checkpoint
