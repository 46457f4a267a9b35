"""The parts of a detector that go into exported graphs, and exporting them to ONNX.

A backend runs the *networks* (the convolutions and fully connected layers, where nearly all
the time goes) and leaves every data-dependent step to detbox's own PyTorch code: anchors,
top-k, box decoding, NMS, proposal selection, RoIAlign level mapping and mask pasting. So the
post-processing is the very code the PyTorch path runs, and the detections differ only by the
runtimes' float rounding in the networks. The graphs:

- ``network``: ``images`` (B, 3, H, W) -> the dense head's raw outputs per level (RetinaNet:
  ``cls_logits_<l>``, ``box_deltas_<l>``); for two-stage detectors also the FPN levels the
  RoI heads pool from (``feats_<l>``) and the RPN's raw outputs (``rpn_cls_logits_<l>``,
  ``rpn_box_deltas_<l>``). Batch, height and width are dynamic.
- ``box_head``: ``roi_feats`` (R, C, 7, 7) -> ``cls_score`` (R, C + 1), ``bbox_pred``.
- ``mask_head``: ``roi_feats`` (R, C, 14, 14) -> ``mask_logits`` (R, classes, 28, 28).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from detbox.deploy.onnx_ops import export_opset
from detbox.errors import DetboxError
from detbox.models.layers.deform_conv import deformable_conv_names
from detbox.models.roi_heads.roi_extractor import boxes_to_rois

__all__ = [
    "GraphPart", "OPSET", "export_parts", "graph_parts", "split_network_outputs",
    "unsupported_reason",
]

OPSET = 17
SUPPORTED = ("RetinaNet, and Faster R-CNN / Mask R-CNN with FPN RoI heads (StandardRoIHead)")


@dataclass(frozen=True)
class GraphPart:
    """One graph to export: the module, its input and output names and which axes vary."""

    name: str
    module: nn.Module
    input_names: tuple[str, ...]
    output_names: tuple[str, ...]
    dynamic_axes: dict[str, dict[int, str]]


def unsupported_reason(detector: nn.Module) -> str | None:
    """Why ``detector`` cannot run on an exported backend, or None when it can."""
    from detbox.models.dense_heads import RetinaHead
    from detbox.models.detectors import RetinaNet, TwoStageDetector

    name = type(detector).__name__
    deformable = deformable_conv_names(getattr(detector, "backbone", nn.Identity()))
    if deformable:
        return (f"{name} with deformable convs in its backbone (dcn; backbone.{deformable[0]} "
                "...) is not supported")
    if isinstance(detector, RetinaNet):
        if isinstance(detector.bbox_head, RetinaHead):
            return None
        return f"{name} with a {type(detector.bbox_head).__name__} is not supported"
    if not isinstance(detector, TwoStageDetector):
        return f"{name} is not supported"
    roi_head = detector.roi_head
    if detector.neck is None or not hasattr(roi_head, "bbox_roi_extractor"):
        return f"{name} with a {type(roi_head).__name__} (C4 RoI head) is not supported"
    if getattr(roi_head, "mask_iou_head", None) is not None:
        return f"{name} with a MaskIoU head (Mask Scoring R-CNN) is not supported"
    return None


class _OneStageNetwork(nn.Module):
    """RetinaNet's backbone, neck and head: images -> (*cls_logits, *box_deltas)."""

    def __init__(self, detector: nn.Module) -> None:
        super().__init__()
        self.detector = detector

    def forward(self, images: Tensor) -> tuple[Tensor, ...]:
        cls_logits, box_deltas = self.detector(images)
        return (*cls_logits, *box_deltas)


class _TwoStageNetwork(nn.Module):
    """Backbone, neck and RPN head: images -> (*feats[:num_feats], *rpn_cls, *rpn_deltas)."""

    def __init__(self, detector: nn.Module, num_feats: int) -> None:
        super().__init__()
        self.detector = detector
        self.num_feats = num_feats

    def forward(self, images: Tensor) -> tuple[Tensor, ...]:
        feats = self.detector.extract_feat(images)
        cls_logits, box_deltas = self.detector.rpn_head(feats)
        return (*feats[: self.num_feats], *cls_logits, *box_deltas)


def num_roi_levels(detector: nn.Module) -> int:
    """How many FPN levels the RoI extractors pool from (the first ones)."""
    roi_head = detector.roi_head
    extractors = [roi_head.bbox_roi_extractor, getattr(roi_head, "mask_roi_extractor", None)]
    return max(e.num_levels for e in extractors if e is not None)


def split_network_outputs(detector: nn.Module, outputs: Sequence[Tensor]
                          ) -> tuple[list[Tensor], list[Tensor], list[Tensor]]:
    """The network graph's outputs as ``(feats, cls_logits, box_deltas)`` per level; ``feats``
    (the levels the RoI heads pool from) is empty for one-stage detectors."""
    outputs = list(outputs)
    num_feats = num_roi_levels(detector) if hasattr(detector, "roi_head") else 0
    levels = (len(outputs) - num_feats) // 2
    return (outputs[:num_feats], outputs[num_feats:num_feats + levels],
            outputs[num_feats + levels:])


def _levels(prefix: str, count: int) -> list[str]:
    return [f"{prefix}_{i}" for i in range(count)]


def _dynamic(names: list[str]) -> dict[str, dict[int, str]]:
    return {name: {0: "batch", 2: f"{name}_height", 3: f"{name}_width"} for name in names}


def graph_parts(detector: nn.Module) -> list[GraphPart]:
    """The graphs ``detector`` is exported as (see the module docstring).

    Raises:
        DetboxError: the detector is not supported by exported backends.
    """
    reason = unsupported_reason(detector)
    if reason is not None:
        raise DetboxError(f"exported backends: {reason}; supported are {SUPPORTED}")
    if not hasattr(detector, "roi_head"):
        levels = len(detector.bbox_head.anchor_generator.strides)
        outputs = _levels("cls_logits", levels) + _levels("box_deltas", levels)
        return [GraphPart("network", _OneStageNetwork(detector), ("images",), tuple(outputs),
                          {"images": {0: "batch", 2: "height", 3: "width"},
                           **_dynamic(outputs)})]
    levels = len(detector.rpn_head.anchor_generator.strides)
    outputs = (_levels("feats", num_roi_levels(detector)) + _levels("rpn_cls_logits", levels)
               + _levels("rpn_box_deltas", levels))
    roi_head = detector.roi_head
    parts = [
        GraphPart("network", _TwoStageNetwork(detector, num_roi_levels(detector)), ("images",),
                  tuple(outputs), {"images": {0: "batch", 2: "height", 3: "width"},
                                   **_dynamic(outputs)}),
        GraphPart("box_head", roi_head.bbox_head, ("roi_feats",), ("cls_score", "bbox_pred"),
                  {n: {0: "rois"} for n in ("roi_feats", "cls_score", "bbox_pred")}),
    ]
    if getattr(roi_head, "with_mask", False):
        parts.append(GraphPart("mask_head", roi_head.mask_head, ("roi_feats",),
                               ("mask_logits",),
                               {n: {0: "rois"} for n in ("roi_feats", "mask_logits")}))
    return parts


def _example_inputs(detector: nn.Module, shape: tuple[int, int]) -> dict[str, Tensor]:
    """An image of ``shape`` and, for two-stage detectors, RoI features pooled from it."""
    images = torch.randn(1, 3, *shape, generator=torch.Generator().manual_seed(0))
    examples = {"network": images}
    if hasattr(detector, "roi_head"):
        height, width = shape
        boxes = torch.tensor([[0.0, 0.0, width / 2, height / 2], [4.0, 8.0, width, height]])
        rois = boxes_to_rois([boxes])
        feats = detector.extract_feat(images)
        roi_head = detector.roi_head
        examples["box_head"] = roi_head.bbox_roi_extractor(feats, rois)
        if getattr(roi_head, "with_mask", False):
            examples["mask_head"] = roi_head.mask_roi_extractor(feats, rois)
    return examples


@torch.no_grad()
def export_parts(detector: nn.Module, folder: str | os.PathLike,
                 shape: tuple[int, int] = (320, 320)) -> dict[str, Path]:
    """Trace the plain (not fast-path) ``detector`` into ``<folder>/<part>.onnx`` files.

    Args:
        detector: an eval-mode CPU detector that :func:`unsupported_reason` accepts.
        folder: where the graphs go (created).
        shape: (H, W) of the example image the network is traced at; any size (and batch)
            works afterwards.

    Returns:
        ``{part name: path}`` in :func:`graph_parts` order.
    """
    parts = graph_parts(detector)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    detector.eval()
    examples = _example_inputs(detector, shape)
    paths = {}
    for part in parts:
        path = folder / f"{part.name}.onnx"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the tracer's notes on shape arithmetic
            torch.onnx.export(part.module, (examples[part.name],), str(path), dynamo=False,
                              opset_version=export_opset(part.module, OPSET),
                              input_names=list(part.input_names),
                              output_names=list(part.output_names),
                              dynamic_axes=part.dynamic_axes)
        paths[part.name] = path
    return paths
