"""Tiny FCOS / ATSS / GFL / FoveaBox heads and detectors for the one-stage tests."""

from __future__ import annotations

import torch

STRIDES = [8, 16, 32]
SIZES = [(8, 8), (4, 4), (2, 2)]  # a 64 x 64 image at strides 8, 16, 32

HEADS = {
    "FCOSHead": {
        "point_generator": {"type": "PointGenerator", "strides": STRIDES},
        "assigner": {"type": "FCOSAssigner", "regress_ranges": [(-1, 16), (16, 32), (32, 1e8)]},
    },
    "ATSSHead": {
        "anchor_generator": {"type": "AnchorGenerator", "strides": STRIDES, "ratios": [1.0],
                             "octave_base_scale": 4, "scales_per_octave": 1},
    },
    "GFLHead": {
        "anchor_generator": {"type": "AnchorGenerator", "strides": STRIDES, "ratios": [1.0],
                             "octave_base_scale": 4, "scales_per_octave": 1},
        "reg_max": 8,
    },
    "FoveaHead": {
        "strides": STRIDES, "base_edges": [16, 32, 64],
        "assigner": {"type": "FoveaAssigner", "scale_ranges": [(1, 32), (16, 64), (32, 128)]},
    },
}
DETECTORS = {"FCOSHead": "FCOS", "ATSSHead": "ATSS", "GFLHead": "GFL", "FoveaHead": "FOVEA"}


def head_cfg(name: str, num_classes: int = 2, in_channels: int = 8, **overrides) -> dict:
    cfg = {"type": name, "num_classes": num_classes, "in_channels": in_channels,
           "feat_channels": 8, "stacked_convs": 1, "norm": None, **HEADS[name]}
    cfg.update(overrides)
    return cfg


def detector_cfg(name: str, num_classes: int = 2) -> dict:
    return {
        "type": DETECTORS[name],
        "backbone": {"type": "ResNet", "depth": 18, "out_indices": (1, 2, 3),
                     "frozen_stages": -1, "norm": "GN", "norm_eval": False},
        "neck": {"type": "FPN", "in_channels": [128, 256, 512], "out_channels": 32,
                 "num_outs": 3, "extra_convs": "input"},
        "bbox_head": head_cfg(name, num_classes, in_channels=32, feat_channels=32, norm="GN"),
    }


def feats(batch: int = 1, channels: int = 8, sizes=SIZES) -> list[torch.Tensor]:
    torch.manual_seed(1)
    return [torch.randn(batch, channels, h, w) for h, w in sizes]
