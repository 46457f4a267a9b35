"""Tiny Cascade (Mask) R-CNN / HTC configs and reference box arithmetic for the cascade tests."""

from __future__ import annotations

import math

import torch

from ._tiny import tiny_two_stage_cfg


def tiny_cascade_cfg(kind: str = "faster", num_classes: int = 2, **roi_head) -> dict:
    """``kind``: ``'faster'`` (Cascade R-CNN) or ``'mask'`` (Cascade Mask R-CNN)."""
    cfg = tiny_two_stage_cfg(kind, num_classes)
    cfg["type"] = "CascadeRCNN"
    cfg["roi_head"]["type"] = "CascadeRoIHead"
    cfg["roi_head"].update(roi_head)
    return cfg


def tiny_htc_cfg(num_classes: int = 2, with_semantic: bool = False, **roi_head) -> dict:
    cfg = tiny_two_stage_cfg("mask", num_classes)
    cfg["type"] = "HybridTaskCascade"
    cfg["roi_head"]["type"] = "HTCRoIHead"
    cfg["roi_head"]["mask_head"]["type"] = "HTCMaskHead"
    if with_semantic:
        cfg["roi_head"]["semantic_head"] = {
            "type": "FusedSemanticHead", "num_seg_classes": 4, "in_channels": 16,
            "conv_channels": 16, "out_channels": 16, "num_convs": 1, "fusion_level": 1,
            "num_levels": 4}
    cfg["roi_head"].update(roi_head)
    return cfg


def reference_decode(boxes: torch.Tensor, deltas: torch.Tensor, stds, shape) -> torch.Tensor:
    """R-CNN's delta decoding written out box by box (no means, clipped to ``shape``)."""
    out = []
    for (x1, y1, x2, y2), (dx, dy, dw, dh) in zip(boxes.tolist(), deltas.tolist()):
        w, h = x2 - x1, y2 - y1
        cx, cy = x1 + 0.5 * w + dx * stds[0] * w, y1 + 0.5 * h + dy * stds[1] * h
        clip = math.log(1000.0 / 16)
        nw, nh = w * math.exp(min(dw * stds[2], clip)), h * math.exp(min(dh * stds[3], clip))
        box = [cx - nw / 2, cy - nh / 2, cx + nw / 2, cy + nh / 2]
        out.append([min(max(box[0], 0), shape[1]), min(max(box[1], 0), shape[0]),
                    min(max(box[2], 0), shape[1]), min(max(box[3], 0), shape[0])])
    return torch.tensor(out, dtype=torch.float32).reshape(-1, 4)


def reference_encode(box, gt, stds) -> list[float]:
    """R-CNN's regression target of one box for one GT box, divided by ``stds``."""
    w, h = box[2] - box[0], box[3] - box[1]
    gw, gh = gt[2] - gt[0], gt[3] - gt[1]
    raw = [((gt[0] + gw / 2) - (box[0] + w / 2)) / w, ((gt[1] + gh / 2) - (box[1] + h / 2)) / h,
           math.log(gw / w), math.log(gh / h)]
    return [r / s for r, s in zip(raw, stds)]
