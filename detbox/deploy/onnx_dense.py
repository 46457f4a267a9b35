"""Dense heads' outputs re-expressed for ONNX export: per level, priors made from traced
feature sizes, (prior, class) scores, regressions and the head's own box decoding.

``OneStageGraph`` (``onnx_graphs``) runs the same top-k / threshold / NMS on what
:func:`dense_levels` returns for any supported head, so adding a head here adds its export.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from detbox.models.dense_heads import (
    ATSSHead,
    FCOSHead,
    FoveaHead,
    GARetinaHead,
    GFLHead,
    RepPointsHead,
    RetinaHead,
)
from detbox.models.dense_heads.dense_utils import flatten_level

__all__ = [
    "SUPPORTED_HEADS", "DenseLevels", "dense_levels", "traced_anchors", "traced_points",
]

#: ``(priors per level, (N_l, C) scores per level, (N_l, R) regressions per level,
#: decode(priors, regressions) -> unclipped (K, 4) boxes)`` for image 0 of the batch.
DenseLevels = tuple[list[Tensor], list[Tensor], list[Tensor], Callable[[Tensor, Tensor], Tensor]]


def traced_anchors(generator, maps: Sequence[Tensor]) -> list[Tensor]:
    """The generator's (H*W*A, 4) anchors per level, sized by traced feature map shapes."""
    anchors = []
    for base, stride, feat in zip(generator.base_anchors, generator.strides, maps):
        height, width = feat.shape[-2], feat.shape[-1]
        offset = generator.center_offset * stride
        shift_x = torch.arange(width, dtype=torch.float32) * stride + offset
        shift_y = torch.arange(height, dtype=torch.float32) * stride + offset
        grid_y, grid_x = torch.meshgrid(shift_y, shift_x, indexing="ij")
        shifts = torch.stack([grid_x, grid_y, grid_x, grid_y], dim=-1).reshape(-1, 1, 4)
        anchors.append((shifts + base.reshape(1, -1, 4)).reshape(-1, 4))
    return anchors


def traced_points(strides: Sequence[int], offset: float, maps: Sequence[Tensor]) -> list[Tensor]:
    """(H*W, 2) points per level (``PointGenerator``'s nominal-stride rule), traced sizes."""
    points = []
    for stride, feat in zip(strides, maps):
        height, width = feat.shape[-2], feat.shape[-1]
        xs = (torch.arange(width, dtype=torch.float32) + offset) * stride
        ys = (torch.arange(height, dtype=torch.float32) + offset) * stride
        grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
        points.append(torch.stack([grid_x.reshape(-1), grid_y.reshape(-1)], dim=1))
    return points


def _flat(maps: Sequence[Tensor], width: int) -> list[Tensor]:
    return [flatten_level(x, width)[0] for x in maps]


def _retina(head: RetinaHead, outputs) -> DenseLevels:
    cls_logits, deltas = outputs
    scores = [x.sigmoid() for x in _flat(cls_logits, head.num_classes)]
    return (traced_anchors(head.anchor_generator, cls_logits), scores, _flat(deltas, 4),
            head.box_coder.decode)


def _atss(head: ATSSHead, outputs) -> DenseLevels:
    cls_logits, deltas, centerness = outputs
    scores = [head.scores(c, q) for c, q in zip(_flat(cls_logits, head.num_classes),
                                                 _flat(centerness, 1))]
    return (traced_anchors(head.anchor_generator, cls_logits), scores, _flat(deltas, 4),
            head.box_coder.decode)


def _fcos(head: FCOSHead, outputs) -> DenseLevels:
    cls_logits, distances, centerness = outputs
    generator = head.point_generator
    scores = [head.scores(c, q) for c, q in zip(_flat(cls_logits, head.num_classes),
                                                 _flat(centerness, 1))]
    return (traced_points(generator.strides, generator.offset, cls_logits), scores,
            _flat(distances, 4), head.box_coder.decode)


def _gfl(head: GFLHead, outputs) -> DenseLevels:
    cls_logits, bbox_dist = outputs
    scores = [x.sigmoid() for x in _flat(cls_logits, head.num_classes)]
    priors = head.priors(traced_anchors(head.anchor_generator, cls_logits))
    return priors, scores, _flat(bbox_dist, 4 * (head.reg_max + 1)), head.decode_boxes


def _fovea(head: FoveaHead, outputs) -> DenseLevels:
    cls_logits, bbox_reg = outputs
    points = traced_points(head.point_generator.strides, head.point_generator.offset, cls_logits)
    priors = [torch.cat([p, torch.full_like(p[:, :1], edge)], dim=1)
              for p, edge in zip(points, head.base_edges)]
    scores = [x.sigmoid() for x in _flat(cls_logits, head.num_classes)]
    return priors, scores, _flat(bbox_reg, 4), head.decode_boxes


def _ga_retina(head: GARetinaHead, outputs) -> DenseLevels:
    """Guided anchors at every location; a location below the head's ``loc_filter_thr``
    scores 0, so the score threshold drops it as ``predict`` drops it before selection."""
    cls_logits, deltas, loc_logits, shapes = outputs
    guide = head.guide
    squares = traced_anchors(guide.square_generator, cls_logits)
    anchors = [guide.guided_anchors(s, shape) for s, shape in zip(squares, _flat(shapes, 2))]
    scores = [x.sigmoid() * (loc.sigmoid() >= guide.loc_filter_thr).to(x.dtype)
              for x, loc in zip(_flat(cls_logits, head.num_classes), _flat(loc_logits, 1))]
    return anchors, scores, _flat(deltas, 4), head.box_coder.decode


def _reppoints(head: RepPointsHead, outputs) -> DenseLevels:
    """Refined point sets as boxes around ``(x, y, stride)`` locations."""
    cls_logits, _, pts_refine = outputs
    points = [torch.cat([p, torch.full_like(p[:, :1], stride)], dim=1) for p, stride in
              zip(traced_points(head.strides, 0.0, cls_logits), head.strides)]
    scores = [x.sigmoid() for x in _flat(cls_logits, head.num_classes)]
    return points, scores, _flat(pts_refine, 2 * head.num_points), head.boxes


_ADAPTERS: dict[type, Callable[[nn.Module, tuple], DenseLevels]] = {
    RetinaHead: _retina, ATSSHead: _atss, FCOSHead: _fcos, GFLHead: _gfl, FoveaHead: _fovea,
    GARetinaHead: _ga_retina, RepPointsHead: _reppoints,
}
SUPPORTED_HEADS = tuple(_ADAPTERS)


def dense_levels(head: nn.Module, outputs: tuple) -> DenseLevels:
    """Per-level priors, scores and regressions of image 0 of ``head(feats)``'s ``outputs``,
    and the head's decoding; a ValueError for a head without an export adapter."""
    for kind, adapter in _ADAPTERS.items():
        if isinstance(head, kind):
            return adapter(head, outputs)
    raise ValueError(f"ONNX export supports the dense heads "
                     f"{', '.join(k.__name__ for k in _ADAPTERS)}, not {type(head).__name__}")
