"""Detectors re-expressed for ONNX export: network, box decoding and NMS in one traced graph.

The models' own ``predict`` code takes Python decisions from tensor sizes (``int(size)``,
``min(nms_pre, n)``, ``if inds.numel() == 0``); a trace freezes those at the example input's
values, so the graph would be wrong for another image size. The modules here compute the same
detections with size arithmetic that stays symbolic in the trace, reusing the models' layers,
anchor bases and box coders. Inputs of every graph:

- ``images`` (1, 3, H, W) float: the normalized, zero-padded network input;
- ``image_size`` (2,) float: ``(h, w)`` of the valid (unpadded) region, boxes are clipped to it;
- ``score_thr`` (1,) float: detections must score above it.

Outputs: ``boxes`` (N, 4) xyxy in input pixels, ``scores`` (N,), ``labels`` (N,) int64, and for
mask models ``mask_probs`` (N, M, M): each box's mask probabilities for its class.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torchvision.ops import nms, roi_align

from detbox.deploy.onnx_dense import SUPPORTED_HEADS, dense_levels, traced_anchors
from detbox.errors import DetboxError
from detbox.models.dense_heads.dense_utils import flatten_level
from detbox.models.roi_heads.roi_extractor import map_rois_to_levels
from detbox.models.task_modules.nms import NMS, build_nms

__all__ = ["CascadeGraph", "OneStageGraph", "TwoStageGraph", "graph_for"]


def _count_min(values: Tensor, k: int) -> Tensor | int:
    """``min(k, len(values))``, as a traced tensor while exporting (so it follows the input
    size) and as an int otherwise."""
    if not torch.jit.is_tracing():
        return min(k, int(values.shape[0]))
    length = torch._shape_as_tensor(values)[0:1]
    return torch.min(torch.cat([torch.tensor([k], dtype=length.dtype), length]))


def _top(values: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """Top ``min(k, n)`` values (all of them, sorted, when ``k <= 0``) and their indices."""
    if k <= 0:
        return values.sort(descending=True)
    return values.topk(_count_min(values, k))


def _clip(boxes: Tensor, image_size: Tensor) -> Tensor:
    """Clip (..., 4) xyxy boxes to ``image_size = (h, w)``, like ``clip_boxes_to_image``."""
    zero = torch.zeros((), dtype=boxes.dtype)
    height, width = image_size[0].to(boxes.dtype), image_size[1].to(boxes.dtype)
    x = torch.minimum(torch.maximum(boxes[..., 0::2], zero), width)
    y = torch.minimum(torch.maximum(boxes[..., 1::2], zero), height)
    return torch.stack([x[..., 0], y[..., 0], x[..., 1], y[..., 1]], dim=-1)


def _batched_nms(boxes: Tensor, scores: Tensor, groups: Tensor, iou_thr: float,
                 image_size: Tensor) -> Tensor:
    """Per-group NMS by shifting each group's boxes apart; the shift comes from the image size
    (boxes are clipped to it), so no reduction over a possibly empty set enters the graph."""
    offsets = groups.to(boxes.dtype) * (image_size.max().to(boxes.dtype) + 1)
    return nms(boxes + offsets[:, None], scores, iou_thr)


def _plain_nms_iou_thr(suppressor: object | None, iou_thr: float, where: str) -> float:
    """The IoU threshold of a head's plain NMS: its ``nms`` suppressor's, or the head's own
    ``iou_thr`` when it has none; other suppressors have no graph here."""
    if suppressor is None:
        return iou_thr
    if not isinstance(suppressor, NMS):
        raise DetboxError(
            f"ONNX export supports plain NMS only, but {where} uses {type(suppressor).__name__}; "
            f"export with {where}=dict(type='nms', iou_thr=...) instead"
        )
    return suppressor.iou_thr


def _roi_pool(extractor, feats: Sequence[Tensor], rois: Tensor) -> Tensor:
    """``MultiLevelRoIExtractor.forward`` without its data-dependent branches."""
    size = (extractor.output_size, extractor.output_size)
    feats = list(feats)[: extractor.num_levels]
    rois = rois.to(feats[0].dtype)

    def pool(feat: Tensor, level_rois: Tensor, stride: int) -> Tensor:
        return roi_align(feat, level_rois, output_size=size, spatial_scale=1.0 / stride,
                         sampling_ratio=extractor.sampling_ratio, aligned=extractor.aligned)

    if extractor.num_levels == 1:
        return pool(feats[0], rois, extractor.featmap_strides[0])
    levels = map_rois_to_levels(rois, extractor.num_levels, extractor.finest_scale)
    out = rois.new_zeros((rois.shape[0], feats[0].shape[1], *size))
    for level, (feat, stride) in enumerate(zip(feats, extractor.featmap_strides)):
        inds = torch.where(levels == level)[0]
        out[inds] = pool(feat, rois[inds], stride)
    return out


class OneStageGraph(nn.Module):
    """One-stage detectors (RetinaNet, FCOS, ATSS, GFL, FoveaBox): the head's per-level
    (prior, class) scores (``onnx_dense.dense_levels``) -> per level top ``nms_pre`` above the
    threshold -> decode, clip -> class-wise NMS -> best ``max_per_img``."""

    def __init__(self, detector: nn.Module) -> None:
        super().__init__()
        self.detector = detector
        self.head = detector.bbox_head

    def forward(self, images: Tensor, image_size: Tensor, score_thr: Tensor):
        head = self.head
        priors, level_scores, level_regs, decode = dense_levels(
            head, head(self.detector.extract_feat(images)))
        boxes, scores, labels = [], [], []
        for level_priors, cls_scores, reg in zip(priors, level_scores, level_regs):
            num_classes = cls_scores.shape[1]
            top_scores, flat = _top(cls_scores.reshape(-1), head.nms_pre)
            keep = torch.where(top_scores > score_thr)[0]
            top_scores, flat = top_scores[keep], flat[keep]
            prior_idx = torch.div(flat, num_classes, rounding_mode="floor")
            decoded = decode(level_priors[prior_idx], reg[prior_idx].float())
            boxes.append(_clip(decoded, image_size))
            scores.append(top_scores)
            labels.append(flat % num_classes)
        boxes, scores, labels = torch.cat(boxes), torch.cat(scores), torch.cat(labels)
        iou_thr = _plain_nms_iou_thr(head.test_settings.suppress, head.nms_iou_thr,
                                     "bbox_head.nms")
        keep = _batched_nms(boxes, scores, labels, iou_thr, image_size)
        keep = keep[: head.max_per_img]
        return boxes[keep], scores[keep], labels[keep]


class TwoStageGraph(nn.Module):
    """Faster / Mask R-CNN: RPN proposals (per level top ``nms_pre``, decode, clip, NMS per
    level, best ``max_per_img``) -> RoI box head -> per-class NMS -> (masks)."""

    def __init__(self, detector: nn.Module) -> None:
        super().__init__()
        self.detector = detector
        self.rpn = detector.rpn_head
        self.roi_head = detector.roi_head
        self.with_mask = bool(getattr(self.roi_head, "with_mask", False))

    def _proposals(self, feats: Sequence[Tensor], image_size: Tensor) -> Tensor:
        rpn, settings = self.rpn, self.rpn.test_proposals
        cls_logits, box_deltas = rpn(feats)
        boxes, scores, levels = [], [], []
        for level, (anchors, logits, deltas) in enumerate(
                zip(traced_anchors(rpn.anchor_generator, cls_logits), cls_logits, box_deltas)):
            level_logits, top = _top(flatten_level(logits, 1)[0, :, 0], settings.nms_pre)
            level_deltas = flatten_level(deltas, 4)[0, top]
            boxes.append(_clip(rpn.box_coder.decode(anchors[top], level_deltas), image_size))
            scores.append(level_logits.sigmoid())
            levels.append(torch.full_like(top, level))
        boxes, scores, levels = torch.cat(boxes), torch.cat(scores), torch.cat(levels)
        widths, heights = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
        keep = torch.where((widths >= settings.min_box_size) & (heights >= settings.min_box_size)
                           & (scores >= settings.score_thr))[0]
        boxes, scores, levels = boxes[keep], scores[keep], levels[keep]
        suppressor = build_nms(settings.nms, iou_thr=settings.nms_iou_thr)
        iou_thr = _plain_nms_iou_thr(suppressor, settings.nms_iou_thr,
                                     "rpn_head.test_proposals.nms")
        keep = _batched_nms(boxes, scores, levels, iou_thr, image_size)
        return boxes[keep[: settings.max_per_img]]

    def _detections(self, feats: Sequence[Tensor], proposals: Tensor, image_size: Tensor,
                    score_thr: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        head = self.roi_head.bbox_head
        rois = torch.cat([proposals.new_zeros((proposals.shape[0], 1)), proposals], dim=1)
        scores, boxes = self._class_scores_and_boxes(feats, rois, image_size)
        scores = scores[:, : head.num_classes]
        labels = torch.arange(head.num_classes).expand_as(scores)
        boxes, scores, labels = boxes.reshape(-1, 4), scores.reshape(-1), labels.reshape(-1)
        keep = torch.where(scores > score_thr)[0]
        boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
        if head.min_box_size > 0:
            keep = torch.where((boxes[:, 2] - boxes[:, 0] >= head.min_box_size)
                               & (boxes[:, 3] - boxes[:, 1] >= head.min_box_size))[0]
            boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
        iou_thr = _plain_nms_iou_thr(head.nms, head.nms_iou_thr, "roi_head.bbox_head.nms")
        keep = _batched_nms(boxes, scores, labels, iou_thr, image_size)
        keep = keep[: head.max_per_img]
        return boxes[keep], scores[keep], labels[keep]

    def _class_scores_and_boxes(self, feats: Sequence[Tensor], rois: Tensor,
                                image_size: Tensor) -> tuple[Tensor, Tensor]:
        """(R, C + 1) class probabilities and (R, C, 4) clipped boxes of (R, 5) RoIs."""
        head = self.roi_head.bbox_head
        cls_score, bbox_pred = head(_roi_pool(self.roi_head.bbox_roi_extractor, feats, rois))
        return cls_score.softmax(dim=-1), _clip(head.decode_boxes(rois, bbox_pred), image_size)

    def forward(self, images: Tensor, image_size: Tensor, score_thr: Tensor):
        feats = self.detector.extract_feat(images)
        proposals = self._proposals(feats, image_size)
        boxes, scores, labels = self._detections(feats, proposals, image_size, score_thr)
        if not self.with_mask:
            return boxes, scores, labels
        rois = torch.cat([boxes.new_zeros((boxes.shape[0], 1)), boxes], dim=1)
        mask_head = self.roi_head.mask_head
        logits = mask_head(_roi_pool(self.roi_head.mask_roi_extractor, feats, rois))
        return boxes, scores, labels, mask_head.predict_by_outputs(logits, labels)


class CascadeGraph(TwoStageGraph):
    """Cascade (Mask) R-CNN: the RoIs pass every box stage (refined by the deltas of each
    stage's best class, clipped), the class probabilities are averaged over the stages and the
    last stage's boxes kept; masks come from the last stage's mask head."""

    def _class_scores_and_boxes(self, feats: Sequence[Tensor], rois: Tensor,
                                image_size: Tensor) -> tuple[Tensor, Tensor]:
        roi_head = self.roi_head
        probs = []
        for stage, head in enumerate(roi_head.bbox_heads):
            cls_score, bbox_pred = head(_roi_pool(roi_head.bbox_roi_extractor, feats, rois))
            probs.append(cls_score.softmax(dim=-1))
            boxes = _clip(head.decode_boxes(rois, bbox_pred), image_size)
            if stage < len(roi_head.bbox_heads) - 1:
                best = probs[-1][:, : head.num_classes].argmax(dim=1)
                refined = boxes[torch.arange(boxes.shape[0]), best]
                rois = torch.cat([rois[:, :1], refined], dim=1)
        return torch.stack(probs).mean(dim=0), boxes


def graph_for(detector: nn.Module) -> nn.Module:
    """The export graph of a detector, or a ValueError naming what is not supported."""
    from detbox.models.detectors import (
        CascadeRCNN,
        GridRCNN,
        HybridTaskCascade,
        SingleStageDetector,
        TridentFasterRCNN,
        TwoStageDetector,
    )

    if isinstance(detector, (TridentFasterRCNN, GridRCNN)):
        raise ValueError(f"ONNX export of {type(detector).__name__} is not supported (its "
                         "branch merging / grid-point decoding has no export graph)")
    if isinstance(detector, SingleStageDetector):
        if not isinstance(detector.bbox_head, SUPPORTED_HEADS):
            raise ValueError(f"ONNX export does not support the dense head "
                             f"{type(detector.bbox_head).__name__} ({type(detector).__name__}): "
                             "it has no export adapter")
        return OneStageGraph(detector)
    if isinstance(detector, HybridTaskCascade):
        raise ValueError("ONNX export of Hybrid Task Cascade (HybridTaskCascade) is not "
                         "supported; Cascade R-CNN and Cascade Mask R-CNN export")
    if isinstance(detector, CascadeRCNN):
        return CascadeGraph(detector)
    if isinstance(detector, TwoStageDetector):
        roi_head = detector.roi_head
        if not hasattr(roi_head, "bbox_roi_extractor"):
            raise ValueError(f"ONNX export supports FPN RoI heads (StandardRoIHead), not "
                             f"{type(roi_head).__name__}")
        if getattr(roi_head, "mask_iou_head", None) is not None:
            raise ValueError("ONNX export of Mask Scoring R-CNN (MaskIoU head) is not supported")
        return TwoStageGraph(detector)
    raise ValueError(f"ONNX export supports one-stage (dense head, SSD) and two-stage "
                     f"detectors, not {type(detector).__name__}")
