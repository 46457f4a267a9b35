"""Pieces every dense head needs: output flattening, training targets over priors, and the
score-threshold / top-k / NMS post-processing.

A dense head predicts, on every level ``l``, a (B, A * K, H_l, W_l) map: K values for each of A
priors at each location. Priors are anchors (N, 4) or points (N, 2) in the same location-major
order (index ``(y * W_l + x) * A + a``), so flattening a map with :func:`flatten_level` lines its
rows up with the level's priors. A new head composes these functions with its own decoding (for
example ``box_coder.decode`` for anchors, distances-to-box for points):

- training: :func:`flatten_levels` the outputs, :func:`dense_targets` with the head's assigner;
- inference: per image, :func:`select_detections` (multi-class sigmoid heads),
  :func:`select_per_class_detections` (softmax heads ranked per class, SSD), both driven by
  the head's ``DetectionSettings``, or :func:`select_proposals` (class-agnostic RPN-like
  heads, ``ProposalSettings``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from torchvision.ops import batched_nms, remove_small_boxes

from detbox.models.dense_heads.detection_settings import DetectionSettings
from detbox.models.task_modules.assigners import IGNORED, AssignResult
from detbox.models.task_modules.nms import build_nms
from detbox.registry import check_kwargs
from detbox.structures import DetSample, Instances

__all__ = [
    "DenseTargets",
    "ProposalSettings",
    "dense_targets",
    "flatten_level",
    "flatten_levels",
    "nms_instances",
    "select_detections",
    "select_per_class_detections",
    "select_proposals",
    "topk_candidates",
    "topk_sigmoid_candidates",
]

#: ``assign(priors, gt_boxes, ignored_boxes) -> AssignResult``, e.g. ``MaxIoUAssigner.assign``.
AssignFn = Callable[[Tensor, Tensor, Tensor], AssignResult]
#: ``decode(priors, regression, img_shape) -> boxes``: (K, P), (K, R), (h, w) -> (K, 4) xyxy.
DecodeFn = Callable[[Tensor, Tensor, Sequence[int]], Tensor]
#: ``nms(boxes, scores, groups, max_num) -> (keep, scores)``, see ``task_modules.nms``.
Suppressor = Callable[[Tensor, Tensor, Tensor, int], tuple[Tensor, Tensor]]


def flatten_level(x: Tensor, width: int) -> Tensor:
    """(B, A * width, H, W) -> (B, H * W * A, width), rows in the priors' location-major order."""
    return x.permute(0, 2, 3, 1).reshape(x.shape[0], -1, width)


def flatten_levels(maps: Sequence[Tensor], width: int) -> Tensor:
    """Per-level (B, A * width, H_l, W_l) maps -> (B, sum_l H_l * W_l * A, width), levels in
    order, so row ``i`` belongs to prior ``i`` of ``torch.cat(per_level_priors)``."""
    return torch.cat([flatten_level(x, width) for x in maps], dim=1)


@dataclass
class DenseTargets:
    """Classification and box targets of a batch's priors.

    Attributes:
        labels: (B, N) int64 class of each prior; ``num_classes`` for background (and ignored).
        valid: (B, N) bool, False for priors the assigner ignores (no classification loss).
        pos_gt_boxes: (P, 4) matched GT box of each positive, in the order of
            ``labels[positive]`` (image-major, then prior index).
        num_classes: foreground classes C (the background label).
    """

    labels: Tensor
    valid: Tensor
    pos_gt_boxes: Tensor
    num_classes: int

    @property
    def positive(self) -> Tensor:
        """(B, N) bool mask of the foreground priors."""
        return (self.labels >= 0) & (self.labels < self.num_classes)

    @property
    def num_pos(self) -> Tensor:
        """Positives in the batch, as a float tensor of at least 1 (the loss normalizer)."""
        return self.positive.sum().clamp(min=1).float()


def dense_targets(
    priors: Tensor, samples: Sequence[DetSample], assign: AssignFn, num_classes: int
) -> DenseTargets:
    """Assign each image's priors to its GT boxes and read off labels and matched boxes.

    Args:
        priors: (N, P) the priors of all levels, concatenated: anchors (P = 4, xyxy) or points
            (P = 2); shared by every image of the batch.
        samples: per image, its DetSample (GT in ``img_shape`` coordinates; may be empty).
        assign: ``assign(priors, gt_boxes, ignored_boxes) -> AssignResult``; bind extra
            arguments (e.g. priors per level for ATSS) with ``functools.partial``.
        num_classes: foreground classes C; background is labelled C.

    Returns:
        The batch's DenseTargets.
    """
    labels, valid, pos_gt_boxes = [], [], []
    for sample in samples:
        gt = sample.gt_or_empty(priors.device)
        gt_boxes = gt.boxes.to(dtype=priors.dtype)
        matched = assign(priors, gt_boxes, sample.ignored_boxes).matched_gt
        positive = matched >= 0
        image_labels = torch.full_like(matched, num_classes)
        image_labels[positive] = gt.labels[matched[positive]]
        labels.append(image_labels)
        valid.append(matched != IGNORED)
        pos_gt_boxes.append(gt_boxes[matched[positive]])
    return DenseTargets(torch.stack(labels), torch.stack(valid), torch.cat(pos_gt_boxes),
                        num_classes)


def topk_candidates(scores: Tensor, score_thr: float, k: int) -> tuple[Tensor, Tensor, Tensor]:
    """One level's best (prior, class) pairs above a score threshold.

    Args:
        scores: (N, C) class probabilities of N priors.
        score_thr: pairs at or below it are dropped first.
        k: pairs kept after that, by decreasing score (``<= 0``: all, unsorted).

    Returns:
        ``scores`` (K,), ``prior_inds`` (K,) int64 rows of ``scores``, ``labels`` (K,) int64.
    """
    num_classes = scores.shape[1]
    scores = scores.flatten()
    flat_inds = torch.where(scores > score_thr)[0]
    scores = scores[flat_inds]
    if k > 0:
        scores, order = scores.topk(min(k, scores.numel()))
        flat_inds = flat_inds[order]
    prior_inds = torch.div(flat_inds, num_classes, rounding_mode="floor")
    return scores, prior_inds, flat_inds % num_classes


def topk_sigmoid_candidates(
    logits: Tensor, score_thr: float, k: int
) -> tuple[Tensor, Tensor, Tensor]:
    """:func:`topk_candidates` of ``sigmoid(logits)``, computing the sigmoid only on the kept pairs.

    The sigmoid is monotone, so thresholding and ranking the logits against
    ``logit(score_thr)`` keeps the same pairs as working on probabilities, without a pass over
    all N * C of them (10 M for RetinaNet's finest level at 800 px).

    Args:
        logits: (N, C) class logits of N priors.
        score_thr: probability threshold; pairs at or below it are dropped first.
        k: pairs kept after that, by decreasing score (``<= 0``: all, unsorted).

    Returns:
        ``scores`` (K,) probabilities, ``prior_inds`` (K,) int64, ``labels`` (K,) int64.
    """
    if score_thr <= 0.0:
        logit_thr = -math.inf
    elif score_thr >= 1.0:
        logit_thr = math.inf
    else:
        logit_thr = math.log(score_thr / (1.0 - score_thr))
    top_logits, prior_inds, labels = topk_candidates(logits, logit_thr, k)
    scores = torch.sigmoid(top_logits.float())
    keep = scores > score_thr  # the exact probability rule, on the few kept pairs
    return scores[keep], prior_inds[keep], labels[keep]


def nms_instances(
    boxes: Tensor, scores: Tensor, labels: Tensor, iou_thr: float, max_num: int,
    groups: Tensor | None = None, nms: Suppressor | None = None,
) -> Instances:
    """NMS within each group (the labels by default), keeping the best ``max_num``.

    Args:
        boxes: (K, 4) xyxy; scores: (K,); labels: (K,) int64.
        iou_thr: the plain-NMS IoU threshold, used when ``nms`` is None.
        groups: (K,) int64 NMS groups if not the labels (e.g. the level of RPN proposals).
        nms: a suppressor from ``build_nms`` (plain NMS, Soft-NMS), replacing ``iou_thr``.

    Returns:
        Instances with the kept ``boxes``, ``labels``, ``scores`` (Soft-NMS: decayed), sorted
        by score.
    """
    groups = labels if groups is None else groups
    if nms is None:
        keep = batched_nms(boxes, scores, groups, iou_thr)[:max_num]
        return Instances(boxes=boxes[keep], labels=labels[keep], scores=scores[keep])
    keep, kept_scores = nms(boxes, scores, groups, max_num)
    keep, kept_scores = keep[:max_num], kept_scores[:max_num]
    return Instances(boxes=boxes[keep], labels=labels[keep], scores=kept_scores)


def select_detections(
    priors: Sequence[Tensor], scores: Sequence[Tensor], regressions: Sequence[Tensor],
    decode: DecodeFn, img_shape: Sequence[int], settings: DetectionSettings, *,
    scores_are_logits: bool = False,
) -> Instances:
    """One image's detections from a multi-class dense head (RetinaNet, FCOS, ATSS, ...).

    Per level: drop (prior, class) scores at or below ``settings.score_thr``, keep the top
    ``settings.nms_pre``, decode their priors' regressions; then class-wise NMS (or Soft-NMS,
    ``settings.suppress``) over all levels, best ``settings.max_per_img``.

    Args:
        priors: per level (N_l, P) priors (anchors or points).
        scores: per level (N_l, C) class probabilities (sigmoid, possibly times a quality).
        regressions: per level (N_l, R) box regressions (deltas, distances, ...).
        decode: maps the kept priors and regressions to (K, 4) boxes clipped to ``img_shape``.
        img_shape: ``(h, w)`` of the image.
        settings: the head's test-time settings.
        scores_are_logits: ``scores`` are logits of sigmoid classifiers; only the candidates
            that pass the threshold get their sigmoid (see :func:`topk_sigmoid_candidates`).

    Returns:
        Instances with ``boxes`` (K, 4) in ``img_shape`` pixels, ``labels``, ``scores``.
    """
    select = topk_sigmoid_candidates if scores_are_logits else topk_candidates
    boxes, kept_scores, labels = [], [], []
    for level_priors, level_scores, level_reg in zip(priors, scores, regressions):
        top_scores, inds, top_labels = select(level_scores, settings.score_thr, settings.nms_pre)
        boxes.append(decode(level_priors[inds], level_reg[inds], img_shape))
        kept_scores.append(top_scores)
        labels.append(top_labels)
    return nms_instances(torch.cat(boxes), torch.cat(kept_scores), torch.cat(labels),
                         settings.nms_iou_thr, settings.max_per_img, nms=settings.suppress)


@dataclass(frozen=True)
class ProposalSettings:
    """How raw RPN-like outputs become proposals (one set for training, one for testing).

    Attributes:
        nms_pre: highest-scoring priors kept per level before NMS.
        max_per_img: proposals kept per image after NMS.
        nms_iou_thr: NMS IoU threshold, applied within each level.
        min_box_size: proposals narrower or shorter than this (pixels) are dropped.
        score_thr: proposals need an objectness probability at least this high.
        nms: ``TASK_UTILS`` config of the suppressor (e.g. ``dict(type='soft_nms', ...)``),
            replacing plain NMS at ``nms_iou_thr``; None keeps plain NMS.
    """

    nms_pre: int = 1000
    max_per_img: int = 1000
    nms_iou_thr: float = 0.7
    min_box_size: float = 0.0
    score_thr: float = 0.0
    nms: Mapping[str, Any] | None = None

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any] | ProposalSettings, name: str) -> ProposalSettings:
        if isinstance(cfg, ProposalSettings):
            return cfg
        check_kwargs(cls, cfg, where=f"RPNHead {name}")
        settings = cls(**cfg)
        build_nms(settings.nms, iou_thr=settings.nms_iou_thr)  # a bad ``nms`` fails here
        return settings


def select_proposals(
    priors: Sequence[Tensor], logits: Sequence[Tensor], regressions: Sequence[Tensor],
    decode: DecodeFn, img_shape: Sequence[int], settings: ProposalSettings,
) -> Instances:
    """One image's class-agnostic proposals (RPN and its variants).

    Per level: the top ``nms_pre`` objectness logits, their decoded boxes; then drop small and
    low-scoring boxes, NMS within each level, and keep the best ``max_per_img``.

    Args:
        priors: per level (N_l, P) priors.
        logits: per level (N_l,) objectness logits.
        regressions: per level (N_l, R) box regressions.
        decode: maps priors and regressions to (K, 4) boxes clipped to ``img_shape``.
        img_shape: ``(h, w)`` of the image.
        settings: the proposal settings.

    Returns:
        Instances with ``boxes`` (K, 4), ``scores`` (K,) objectness probabilities and
        ``labels`` (K,) zeros, sorted by score.
    """
    boxes, scores, levels = [], [], []
    for level, (level_priors, level_logits, level_reg) in enumerate(
            zip(priors, logits, regressions)):
        level_logits = level_logits.float()
        if 0 < settings.nms_pre < level_logits.numel():
            level_logits, top = level_logits.topk(settings.nms_pre)
            level_priors, level_reg = level_priors[top], level_reg[top]
        boxes.append(decode(level_priors, level_reg, img_shape))
        scores.append(torch.sigmoid(level_logits))
        levels.append(torch.full_like(level_logits, level, dtype=torch.int64))
    boxes, scores, levels = torch.cat(boxes), torch.cat(scores), torch.cat(levels)
    keep = remove_small_boxes(boxes, settings.min_box_size)
    keep = keep[scores[keep] >= settings.score_thr]
    boxes, scores, levels = boxes[keep], scores[keep], levels[keep]
    suppress = build_nms(settings.nms, iou_thr=settings.nms_iou_thr)
    return nms_instances(boxes, scores, torch.zeros_like(levels), settings.nms_iou_thr,
                         settings.max_per_img, groups=levels, nms=suppress)


def select_per_class_detections(
    priors: Tensor, scores: Tensor, regressions: Tensor, decode: DecodeFn,
    img_shape: Sequence[int], settings: DetectionSettings,
) -> Instances:
    """One image's detections from a softmax dense head (SSD), ranked per class over all levels.

    For every class: the priors scoring above ``settings.score_thr``, at most the
    ``settings.nms_pre`` best (SSD's ``topk``); then class-wise NMS (or Soft-NMS) over all
    classes and the best ``settings.max_per_img`` (SSD's and torchvision's
    ``SSD.postprocess_detections`` rule, unlike :func:`select_detections`' per-level top-k).

    Args:
        priors: (N, 4) priors of all levels, concatenated.
        scores: (N, C) class probabilities (softmax, background column removed).
        regressions: (N, R) box regressions.
        decode: maps the kept priors and regressions to (K, 4) boxes clipped to ``img_shape``.
        img_shape: ``(h, w)`` of the image.
        settings: the head's test-time settings.

    Returns:
        Instances with ``boxes`` (K, 4) in ``img_shape`` pixels, ``labels``, ``scores``.
    """
    per_class = scores.float().t()  # (C, N)
    topk = settings.nms_pre
    k = min(topk, per_class.shape[1]) if topk > 0 else per_class.shape[1]
    top_scores, prior_inds = per_class.topk(k, dim=1)  # (C, k), best first per class
    labels = torch.arange(per_class.shape[0], device=scores.device)[:, None].expand_as(prior_inds)
    keep = top_scores > settings.score_thr
    top_scores, prior_inds, labels = top_scores[keep], prior_inds[keep], labels[keep]
    boxes = decode(priors[prior_inds], regressions[prior_inds], img_shape)
    return nms_instances(boxes, top_scores, labels, settings.nms_iou_thr, settings.max_per_img,
                         nms=settings.suppress)
