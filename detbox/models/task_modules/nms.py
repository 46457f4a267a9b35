"""Suppressing duplicate detections: plain NMS and Soft-NMS behind one config switch.

Every head that post-processes with NMS (dense heads, the RoI box head, RPN proposals) calls a
suppressor built by :func:`build_nms` from its ``nms`` setting::

    nms=dict(type="nms", iou_thr=0.5)                                  # the default
    nms=dict(type="soft_nms", iou_thr=0.3, sigma=0.5, min_score=1e-3, method="gaussian")

A suppressor is called as ``suppress(boxes, scores, groups, max_num) -> (keep, scores)``: indices
of the kept boxes, best first, and their (possibly decayed) scores. Suppression only acts within
a group (the class, or the level of RPN proposals), as ``torchvision.ops.batched_nms``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, get_args

import torch
from torch import Tensor
from torchvision.ops import batched_nms, box_iou

from detbox.errors import ConfigError
from detbox.registry import TASK_UTILS

__all__ = ["NMS", "SoftNMS", "batched_soft_nms", "build_nms", "soft_nms"]

SoftNMSMethod = Literal["linear", "gaussian"]
_METHODS = get_args(SoftNMSMethod)


@TASK_UTILS.register
@TASK_UTILS.register(name="nms")
class NMS:
    """Greedy NMS: a box is dropped when it overlaps a better box of its group by more than
    ``iou_thr`` (``torchvision.ops.batched_nms``).

    Args:
        iou_thr: the IoU above which the lower-scoring box is dropped.
    """

    def __init__(self, *, iou_thr: float = 0.5) -> None:
        if not 0.0 <= iou_thr <= 1.0:
            raise ConfigError(f"nms iou_thr must be in [0, 1], got {iou_thr}")
        self.iou_thr = iou_thr

    def __call__(
        self, boxes: Tensor, scores: Tensor, groups: Tensor, max_num: int = -1
    ) -> tuple[Tensor, Tensor]:
        """(K, 4) xyxy boxes, (K,) scores, (K,) int64 groups -> kept indices (best first, at
        most ``max_num`` when positive) and their scores."""
        keep = batched_nms(boxes, scores, groups, self.iou_thr)
        if max_num > 0:
            keep = keep[:max_num]
        return keep, scores[keep]


@TASK_UTILS.register
@TASK_UTILS.register(name="soft_nms")
class SoftNMS:
    """Soft-NMS (Bodla et al., 2017): overlapping boxes lose score instead of being dropped.

    After each pick ``M`` (the best remaining box), every remaining box ``b`` of the same group is
    rescored ``s_b *= f(IoU(M, b))`` with ``f = 1 - IoU`` when ``IoU >= iou_thr`` (linear) or
    ``f = exp(-IoU^2 / sigma)`` (gaussian); boxes whose score falls below ``min_score`` leave.

    Args:
        iou_thr: overlap from which the linear method decays (unused by the gaussian one).
        sigma: width of the gaussian penalty.
        min_score: boxes scoring below this (before or after decay) are dropped.
        method: ``'linear'`` or ``'gaussian'``.
    """

    def __init__(
        self, *, iou_thr: float = 0.3, sigma: float = 0.5, min_score: float = 1e-3,
        method: SoftNMSMethod = "linear",
    ) -> None:
        if method not in _METHODS:
            raise ConfigError(f"soft_nms method must be one of {_METHODS}, got '{method}'")
        if sigma <= 0:
            raise ConfigError(f"soft_nms sigma must be positive, got {sigma}")
        self.iou_thr = iou_thr
        self.sigma = sigma
        self.min_score = min_score
        self.method = method

    def __call__(
        self, boxes: Tensor, scores: Tensor, groups: Tensor, max_num: int = -1
    ) -> tuple[Tensor, Tensor]:
        """Like :meth:`NMS.__call__`; the returned scores are the decayed ones."""
        return batched_soft_nms(boxes, scores, groups, iou_thr=self.iou_thr, sigma=self.sigma,
                                min_score=self.min_score, method=self.method, max_num=max_num)


def soft_nms(
    boxes: Tensor, scores: Tensor, *, iou_thr: float = 0.3, sigma: float = 0.5,
    min_score: float = 1e-3, method: SoftNMSMethod = "linear", max_num: int = -1,
) -> tuple[Tensor, Tensor]:
    """Soft-NMS of one group of boxes (see :class:`SoftNMS`).

    One iteration per pick, each a handful of tensor operations over the remaining boxes (the
    IoU of the pick against all boxes is computed on the fly, so memory stays O(K)). Picks come
    in decreasing order of their final score, so stopping after ``max_num`` picks is exact.

    Args:
        boxes: (K, 4) xyxy; scores: (K,) non-negative scores.
        max_num: stop after this many picks (``<= 0``: until no box is left).

    Returns:
        ``keep`` (N,) int64 indices into ``boxes``, best first, and ``scores`` (N,) their
        decayed scores (all ``>= min_score``).
    """
    work = torch.where(scores >= min_score, scores.float(), scores.new_tensor(-1.0).float())
    limit = boxes.shape[0] if max_num <= 0 else min(max_num, boxes.shape[0])
    boxes = boxes.float()
    keep, kept = [], []
    for _ in range(limit):
        best_score, best = work.max(dim=0)
        if float(best_score) < min_score:
            break
        keep.append(best)
        kept.append(best_score)
        work[best] = -1.0
        iou = box_iou(boxes[best][None], boxes)[0].nan_to_num(0.0)  # degenerate boxes
        if method == "linear":
            decay = torch.where(iou >= iou_thr, 1.0 - iou, torch.ones_like(iou))
        else:
            decay = torch.exp(-(iou * iou) / sigma)
        work = torch.where(work >= 0, work * decay, work)
        work = torch.where(work < min_score, work.new_tensor(-1.0), work)
    if not keep:
        return boxes.new_zeros((0,), dtype=torch.int64), scores.new_zeros((0,))
    return torch.stack(keep), torch.stack(kept).to(scores.dtype)


def batched_soft_nms(
    boxes: Tensor, scores: Tensor, groups: Tensor, **kwargs: Any
) -> tuple[Tensor, Tensor]:
    """:func:`soft_nms` within each group, in one pass: each group's boxes are shifted apart
    (by more than the boxes' extent) so boxes of different groups never overlap.

    Args:
        boxes: (K, 4) xyxy; scores: (K,); groups: (K,) int64.
        **kwargs: :func:`soft_nms`'s settings (``iou_thr``, ``sigma``, ``min_score``,
            ``method``, ``max_num``).
    """
    if boxes.numel() == 0:
        return boxes.new_zeros((0,), dtype=torch.int64), scores.new_zeros((0,))
    span = boxes.max() - boxes.min() + 1
    offsets = groups.to(boxes.dtype) * span
    return soft_nms(boxes - boxes.min() + offsets[:, None], scores, **kwargs)


def build_nms(cfg: Mapping[str, Any] | Any | None, *, iou_thr: float) -> Any:
    """The suppressor a head's ``nms`` setting names; None gives plain NMS at ``iou_thr`` (the
    head's own ``nms_iou_thr``, so configs without ``nms`` keep their behaviour)."""
    if cfg is None:
        return NMS(iou_thr=iou_thr)
    return TASK_UTILS.build(cfg)
