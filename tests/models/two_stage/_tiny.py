"""Tiny two-stage detectors and samples shared by the two-stage tests."""

from __future__ import annotations

import torch

from detbox.registry import MODELS
from detbox.structures import DetSample, ImageBatch, Instances

TINY_BACKBONE = {
    "type": "ResNet",
    "depth": 18,
    "out_indices": (0, 1, 2, 3),
    "frozen_stages": -1,
    "norm": "GN",
    "norm_eval": False,
}
TINY_NECK = {
    "type": "FPN",
    "in_channels": [64, 128, 256, 512],
    "out_channels": 16,
    "num_outs": 5,
    "extra_convs": None,
}


def tiny_rpn_head(**overrides) -> dict:
    cfg = {
        "type": "RPNHead",
        "in_channels": 16,
        "feat_channels": 16,
        "anchor_generator": {
            "type": "AnchorGenerator",
            "strides": [4, 8, 16, 32, 64],
            "ratios": [0.5, 1.0, 2.0],
            "scales": [4],
        },
        "train_proposals": {"nms_pre": 200, "max_per_img": 100},
        "test_proposals": {"nms_pre": 200, "max_per_img": 100},
    }
    cfg.update(overrides)
    return cfg


def tiny_two_stage_cfg(kind: str = "mask", num_classes: int = 2) -> dict:
    """``kind``: ``'faster'``, ``'mask'`` or ``'ms'`` (Mask Scoring)."""
    roi_head = {
        "type": "StandardRoIHead",
        "bbox_head": {
            "type": "Shared2FCBBoxHead",
            "num_classes": num_classes,
            "in_channels": 16,
            "fc_channels": 32,
        },
        "sampler": {
            "type": "RandomSampler",
            "num": 64,
            "pos_fraction": 0.25,
            "add_gt_as_proposals": True,
        },
    }
    if kind in ("mask", "ms"):
        roi_head["mask_head"] = {
            "type": "FCNMaskHead",
            "num_classes": num_classes,
            "in_channels": 16,
            "num_convs": 2,
            "conv_channels": 16,
        }
    if kind == "ms":
        roi_head["mask_iou_head"] = {
            "type": "MaskIoUHead",
            "num_classes": num_classes,
            "in_channels": 16,
            "num_convs": 2,
            "conv_channels": 16,
            "fc_channels": 32,
        }
    detector = {"faster": "FasterRCNN", "mask": "MaskRCNN", "ms": "MaskScoringRCNN"}[kind]
    return {
        "type": detector,
        "backbone": dict(TINY_BACKBONE),
        "neck": dict(TINY_NECK),
        "rpn_head": tiny_rpn_head(),
        "roi_head": roi_head,
    }


def tiny_c4_cfg(num_classes: int = 2) -> dict:
    """A Mask R-CNN C4: ResNet-18 up to C4, res5 + box and mask heads in the RoI head."""
    return {
        "type": "MaskRCNN",
        "backbone": {
            "type": "ResNet",
            "depth": 18,
            "out_indices": (2,),
            "num_stages": 3,
            "frozen_stages": -1,
            "norm": "GN",
            "norm_eval": False,
        },
        "rpn_head": {
            "type": "RPNHead",
            "in_channels": 256,
            "feat_channels": 16,
            "anchor_generator": {
                "type": "AnchorGenerator",
                "strides": [16],
                "ratios": [0.5, 1.0, 2.0],
                "scales": [1, 2, 4],
            },
            "train_proposals": {"nms_pre": 200, "max_per_img": 100},
            "test_proposals": {"nms_pre": 200, "max_per_img": 100},
        },
        "roi_head": {
            "type": "Res5RoIHead",
            "depth": 18,
            "norm": "GN",
            "norm_eval": False,
            "bbox_head": {
                "type": "ConvFCBBoxHead",
                "num_classes": num_classes,
                "in_channels": 512,
                "with_avg_pool": True,
                "num_fcs": 0,
            },
            "mask_head": {
                "type": "FCNMaskHead",
                "num_classes": num_classes,
                "in_channels": 512,
                "roi_size": 7,
                "num_convs": 0,
                "conv_channels": 16,
            },
            "sampler": {
                "type": "RandomSampler",
                "num": 16,
                "pos_fraction": 0.25,
                "add_gt_as_proposals": True,
            },
        },
    }


def build(cfg: dict, seed: int = 0):
    torch.manual_seed(seed)
    return MODELS.build(cfg)


def box_mask(box: tuple[int, int, int, int], shape: tuple[int, int]) -> torch.Tensor:
    """(H, W) bool mask that is True inside the integer box ``(x1, y1, x2, y2)``."""
    mask = torch.zeros(shape, dtype=torch.bool)
    x1, y1, x2, y2 = box
    mask[y1:y2, x1:x2] = True
    return mask


def rectangles_batch(size: int = 64, with_gt: bool = True, scale: float = 1.0) -> ImageBatch:
    """Two images with one bright rectangle each (labels 0 and 1), GT boxes and masks.

    ``scale`` sets ``scale_factor`` so that ``ori_shape = size / scale``.
    """
    boxes = [(8, 12, 40, 44), (24, 8, 56, 40)]
    images = torch.zeros(2, 3, size, size)
    samples = []
    ori = (round(size / scale), round(size / scale))
    for i, (x1, y1, x2, y2) in enumerate(boxes):
        images[i, :, y1:y2, x1:x2] = 1.0
        gt = None
        if with_gt:
            gt = Instances(
                boxes=torch.tensor([[x1, y1, x2, y2]], dtype=torch.float32),
                labels=torch.tensor([i]),
                masks=box_mask((x1, y1, x2, y2), (size, size))[None],
            )
        samples.append(
            DetSample(
                image_id=i,
                file_name=f"{i}.png",
                ori_shape=ori,
                img_shape=(size, size),
                scale_factor=(scale, scale),
                gt=gt,
            )
        )
    return ImageBatch(images=images, samples=samples)


def train_steps(model, batch: ImageBatch, steps: int, lr: float = 0.01) -> list[dict]:
    """SGD steps; returns each step's losses as floats."""
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    history = []
    for _ in range(steps):
        losses = model.loss(batch)
        total = sum(losses.values())
        optimizer.zero_grad()
        total.backward()
        optimizer.step()
        history.append({k: float(v.detach()) for k, v in losses.items()})
    return history
