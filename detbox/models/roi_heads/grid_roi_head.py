"""Grid R-CNN's RoI head: the box head classifies, the grid head places the boxes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from types import MappingProxyType
from typing import Any

import torch
from torch import Tensor, nn

from detbox.models.roi_heads.box_branch import BoxBranch
from detbox.models.roi_heads.roi_extractor import boxes_to_rois
from detbox.models.roi_heads.standard_roi_head import (
    DEFAULT_BBOX_EXTRACTOR,
    DEFAULT_RCNN_ASSIGNER,
    DEFAULT_RCNN_SAMPLER,
)
from detbox.models.roi_heads.targets import SamplingResult
from detbox.registry import MODELS, TASK_UTILS
from detbox.structures import DetSample, Instances

__all__ = ["GridRoIHead", "jitter_boxes"]

DEFAULT_GRID_EXTRACTOR = MappingProxyType({
    "type": "MultiLevelRoIExtractor", "output_size": 14, "featmap_strides": (4, 8, 16, 32)})


def jitter_boxes(boxes: Tensor, amplitude: float, img_shape: Sequence[int],
                 generator: torch.Generator | None = None) -> Tensor:
    """(N, 4) boxes with centre shifted and size scaled by up to ``amplitude`` of their size
    (uniformly at random), clipped to ``img_shape``: more varied positives for the grid head."""
    noise = torch.rand(boxes.shape, generator=generator).to(boxes) * 2 * amplitude - amplitude
    wh = boxes[:, 2:] - boxes[:, :2]
    centres = (boxes[:, :2] + boxes[:, 2:]) / 2 + wh * noise[:, :2]
    half = wh * (1 + noise[:, 2:]) / 2
    out = torch.cat([centres - half, centres + half], dim=1)
    out[:, 0::2] = out[:, 0::2].clamp(0, img_shape[1])
    out[:, 1::2] = out[:, 1::2].clamp(0, img_shape[0])
    return out


@MODELS.register
class GridRoIHead(nn.Module):
    """A ``BoxBranch`` whose box head only classifies (``with_reg=False``), plus a grid head.

    Training: the box branch trains its classifier on the sampled RoIs (IoU >= 0.5 positive);
    the positives, jittered by up to 15%, at most ``max_grid_rois`` of them, train the grid
    head. Inference: the classifier scores the proposals, class-wise NMS keeps the best (on
    the proposal boxes), and the grid head moves each kept box to its grid points.

    Args:
        bbox_head: ``MODELS`` config of the classifier (``Shared2FCBBoxHead`` with
            ``with_reg=False``).
        grid_head: ``MODELS`` config of the ``GridHead``.
        bbox_roi_extractor: ``MODELS`` config of the box pooler (7x7).
        grid_roi_extractor: ``MODELS`` config of the grid pooler (14x14).
        assigner: ``TASK_UTILS`` config of the proposal assigner.
        sampler: ``TASK_UTILS`` config of the RoI sampler.
        jitter: amplitude of the positives' random jitter for the grid head.
        max_grid_rois: positives per batch the grid head trains on (a random subset; 192).
    """

    def __init__(
        self,
        *,
        bbox_head: Mapping[str, Any] | nn.Module,
        grid_head: Mapping[str, Any] | nn.Module,
        bbox_roi_extractor: Mapping[str, Any] | nn.Module = DEFAULT_BBOX_EXTRACTOR,
        grid_roi_extractor: Mapping[str, Any] | nn.Module = DEFAULT_GRID_EXTRACTOR,
        assigner: Mapping[str, Any] | Any = DEFAULT_RCNN_ASSIGNER,
        sampler: Mapping[str, Any] | Any = DEFAULT_RCNN_SAMPLER,
        jitter: float = 0.15,
        max_grid_rois: int = 192,
    ) -> None:
        super().__init__()
        self.bbox_roi_extractor = MODELS.build(bbox_roi_extractor)
        self.bbox_head = MODELS.build(bbox_head)
        self.grid_roi_extractor = MODELS.build(grid_roi_extractor)
        self.grid_head = MODELS.build(grid_head)
        self.assigner = TASK_UTILS.build(assigner)
        self.sampler = TASK_UTILS.build(sampler)
        self.jitter = jitter
        self.max_grid_rois = max_grid_rois

    @property
    def num_classes(self) -> int:
        return self.bbox_head.num_classes

    @property
    def box_branch(self) -> BoxBranch:
        """The classification stage, wired from this head's modules."""
        return BoxBranch(roi_extractor=self.bbox_roi_extractor, bbox_head=self.bbox_head,
                         assigner=self.assigner, sampler=self.sampler)

    def forward(self, feats: Sequence[Tensor], rois: Tensor) -> tuple[Tensor, Tensor]:
        """Raw box head outputs for (R, 5) RoIs: (R, C + 1) logits and (zero) deltas."""
        return self.bbox_head(self.bbox_roi_extractor(feats, rois))

    def grid_loss(
        self, feats: Sequence[Tensor], results: Sequence[SamplingResult],
        gts: Sequence[Instances], samples: Sequence[DetSample],
    ) -> dict[str, Tensor]:
        """``loss_grid`` on (jittered) positive RoIs; zero, still connected to the grid head's
        parameters, when the batch has no positive."""
        boxes = [jitter_boxes(r.pos_boxes, self.jitter, s.img_shape)
                 for r, s in zip(results, samples)]
        gt_boxes = torch.cat([g.boxes[r.pos_gt_inds] for r, g in zip(results, gts)])
        rois = boxes_to_rois(boxes)
        if rois.shape[0] == 0:
            return {"loss_grid": sum(p.sum() * 0.0 for p in self.grid_head.parameters())}
        keep = torch.randperm(rois.shape[0], device=rois.device)[:self.max_grid_rois]
        rois, gt_boxes = rois[keep], gt_boxes[keep].to(rois)
        fused, unfused = self.grid_head(self.grid_roi_extractor(feats, rois))
        targets = self.grid_head.get_targets(rois[:, 1:], gt_boxes)
        return self.grid_head.loss_by_outputs(fused, unfused, targets)

    def loss(
        self, feats: Sequence[Tensor], proposals: Sequence[Instances],
        samples: Sequence[DetSample],
    ) -> dict[str, Tensor]:
        """``loss_cls`` (+ ``loss_bbox`` if the box head regresses) and ``loss_grid``."""
        gts = [s.gt_or_empty(feats[0].device) for s in samples]
        box = self.box_branch
        results = box.sample(proposals, gts, samples)
        losses, _ = box.loss(feats, results, gts)
        losses.update(self.grid_loss(feats, results, gts, samples))
        return losses

    def predict(
        self, feats: Sequence[Tensor], proposals: Sequence[Instances],
        samples: Sequence[DetSample],
    ) -> list[Instances]:
        """Detections per image in ``img_shape`` coordinates, boxes placed by the grid head."""
        img_shapes = [s.img_shape for s in samples]
        dets = self.box_branch.predict(feats, proposals, img_shapes)
        rois = boxes_to_rois([d.boxes for d in dets])
        if rois.shape[0] == 0:
            return dets
        fused, _ = self.grid_head(self.grid_roi_extractor(feats, rois))
        boxes = self.grid_head.predict_by_outputs(fused, rois, img_shapes)
        return [replace(d, boxes=b) for d, b in zip(dets, boxes)]
