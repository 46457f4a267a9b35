"""SSD re-expressed for ONNX export (see :mod:`detbox.deploy.onnx_graphs` for the inputs).

The network input is cut to ``image_size`` (the loaders pad 300 px to 320), the priors are
rebuilt from the traced map sizes and ``image_size``, and the post-processing is SSD's: per
class the ``topk`` best priors above the threshold, class-wise NMS, best ``max_per_img``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from detbox.deploy.onnx_graphs import (
    _batched_nms,
    _clip,
    _count_min,
    _plain_nms_iou_thr,
    graph_for,
)
from detbox.models.dense_heads.dense_utils import flatten_levels

__all__ = ["SSDGraph", "export_graph"]


def export_graph(detector: nn.Module) -> nn.Module:
    """The export graph of any supported detector: :class:`SSDGraph` for an SSD, else
    :func:`~detbox.deploy.onnx_graphs.graph_for`'s (a ValueError naming what is not supported)."""
    from detbox.models.detectors import SSD

    return SSDGraph(detector) if isinstance(detector, SSD) else graph_for(detector)


def _priors(generator, maps: Sequence[Tensor], image_size: Tensor) -> Tensor:
    """All levels' (N, 4) priors, as ``SSDPriorGenerator.grid_anchors`` with traced sizes."""
    height, width = image_size[0], image_size[1]
    levels = []
    for k, feat in enumerate(maps):
        rows, cols = feat.shape[-2], feat.shape[-1]
        xs = torch.arange(cols, dtype=torch.float32) + 0.5
        ys = torch.arange(rows, dtype=torch.float32) + 0.5
        if generator.steps is not None:
            xs, ys = xs * generator.steps[k] / width, ys * generator.steps[k] / height
        else:
            xs, ys = xs / cols, ys / rows
        grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
        centres = torch.stack([grid_x, grid_y], dim=-1).reshape(-1, 1, 2)
        half = 0.5 * generator.base_sizes[k][None]
        scale = torch.stack([width, height])
        levels.append(torch.cat([(centres - half) * scale, (centres + half) * scale],
                                dim=-1).reshape(-1, 4))
    return torch.cat(levels)


class SSDGraph(nn.Module):
    """SSD: unpadded input -> head -> softmax -> per class top ``topk`` above the threshold
    -> decode, clip -> class-wise NMS -> best ``max_per_img``."""

    def __init__(self, detector: nn.Module) -> None:
        super().__init__()
        self.detector = detector
        self.head = detector.bbox_head

    def forward(self, images: Tensor, image_size: Tensor, score_thr: Tensor):
        head = self.head
        rows = torch.arange(image_size[0].long())
        cols = torch.arange(image_size[1].long())
        images = images.index_select(2, rows).index_select(3, cols)
        cls_logits, box_deltas = head(self.detector.extract_feat(images))
        priors = _priors(head.prior_generator, cls_logits, image_size)
        scores = flatten_levels(cls_logits, head.num_classes + 1)[0].softmax(dim=-1)
        deltas = flatten_levels(box_deltas, 4)[0]
        per_class = scores[:, :head.num_classes].t()  # (C, N)
        k = _count_min(per_class[0], head.topk) if head.topk > 0 else per_class.shape[1]
        top_scores, prior_inds = per_class.topk(k, dim=1)
        labels = torch.arange(head.num_classes)[:, None].expand_as(prior_inds)
        keep = top_scores > score_thr
        top_scores, prior_inds, labels = top_scores[keep], prior_inds[keep], labels[keep]
        boxes = _clip(head.box_coder.decode(priors[prior_inds], deltas[prior_inds]), image_size)
        iou_thr = _plain_nms_iou_thr(head.test_settings.suppress, head.nms_iou_thr,
                                     "bbox_head.nms")
        keep = _batched_nms(boxes, top_scores, labels, iou_thr, image_size)
        keep = keep[: head.max_per_img]
        return boxes[keep], top_scores[keep], labels[keep]
