"""One box stage of a two-stage detector: pool RoIs, classify them, regress their boxes.

``StandardRoIHead`` and ``Res5RoIHead`` are one ``BoxBranch`` (plus an optional mask branch); a
cascade is several, each stage training on the previous stage's refined boxes::

    proposals = rpn_proposals
    for stage in stages:                      # BoxBranch objects, IoU thresholds rising
        results = stage.sample(proposals, gts, samples, feats)
        stage_losses, out = stage.loss(feats, results, gts)
        proposals = stage.refine_sampled(out, results, img_shapes)   # GT boxes dropped

(``CascadeRoIHead`` is this loop.) A branch wires modules it does not own: the RoI head
registers the extractor and box head as its own attributes (so checkpoint keys stay
``bbox_head.*``; a cascade registers ``nn.ModuleList`` s) and hands them to the branch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import torch
from torch import Tensor, nn

from detbox.models.roi_heads.roi_extractor import boxes_to_rois
from detbox.models.roi_heads.targets import SamplingResult, sample_proposals
from detbox.models.task_modules.assigners import BACKGROUND, AssignResult
from detbox.structures import DetSample, Instances

__all__ = ["BoxBranch", "BoxOutputs", "refinement_labels"]

#: ``extract(feats, rois) -> roi_feats``: per-level maps and (R, 5) RoIs -> (R, C, S, S).
RoIFeatureFn = Callable[[Sequence[Tensor], Tensor], Tensor]


@dataclass
class BoxOutputs:
    """What one box stage computed for a set of RoIs.

    Attributes:
        rois: (R, 5) ``(image_index, x1, y1, x2, y2)`` in ``img_shape`` coordinates.
        roi_feats: (R, C, S, S) the pooled features the box head read.
        cls_score: (R, num_classes + 1) logits, background last.
        bbox_pred: (R, 4 * num_classes) or (R, 4) deltas.
        labels: (R,) int64 training targets (``num_classes`` = background), or None at test time.
    """

    rois: Tensor
    roi_feats: Tensor
    cls_score: Tensor
    bbox_pred: Tensor
    labels: Tensor | None = None


def refinement_labels(labels: Tensor, cls_score: Tensor, num_classes: int) -> Tensor:
    """Class whose deltas refine each RoI: its target class, or for background RoIs the
    best-scoring foreground class. (R,), (R, C + 1) -> (R,) int64 in ``[0, C)``."""
    best = cls_score[:, :num_classes].argmax(dim=1)
    return torch.where(labels == num_classes, best, labels)


@dataclass(eq=False)
class BoxBranch:
    """RoI feature extractor + box head + the assigner and sampler its training RoIs come from.

    Attributes:
        roi_extractor: ``extract(feats, rois)`` (a ``MultiLevelRoIExtractor``, or C4 pooling
            followed by res5).
        bbox_head: a ``ConvFCBBoxHead``-like module: ``forward(roi_feats)``, ``get_targets``,
            ``loss_by_outputs``, ``predict_by_outputs``, ``refine_boxes``.
        assigner: a ``MaxIoUAssigner``-like object (the stage's IoU thresholds).
        sampler: a ``RandomSampler``-like object.
    """

    roi_extractor: RoIFeatureFn
    bbox_head: nn.Module
    assigner: Any
    sampler: Any

    @property
    def num_classes(self) -> int:
        return self.bbox_head.num_classes

    def outputs(self, feats: Sequence[Tensor], rois: Tensor) -> BoxOutputs:
        """Pool (R, 5) RoIs from the feature levels and run the box head on them."""
        roi_feats = self.roi_extractor(feats, rois)
        cls_score, bbox_pred = self.bbox_head(roi_feats)
        return BoxOutputs(rois=rois, roi_feats=roi_feats, cls_score=cls_score,
                          bbox_pred=bbox_pred)

    def sample(
        self, proposals: Sequence[Instances], gts: Sequence[Instances],
        samples: Sequence[DetSample], feats: Sequence[Tensor] | None = None,
    ) -> list[SamplingResult]:
        """Assign each image's proposals (``boxes`` in ``img_shape`` coordinates) to its GT and
        sample the RoIs to train on (see ``sample_proposals``). A hard-mining sampler (OHEM)
        ranks the candidates by :meth:`candidate_losses`, which needs the feature levels."""
        hardness = None if feats is None else partial(self.candidate_losses, feats)
        return sample_proposals(self.assigner, self.sampler, proposals, gts, samples, hardness)

    @torch.no_grad()
    def candidate_losses(
        self, feats: Sequence[Tensor], image_index: int, boxes: Tensor,
        assign_result: AssignResult, gt: Instances,
    ) -> Tensor:
        """Each candidate box's loss under the current box head, without gradient (OHEM).

        Args:
            feats: feature levels of the batch, (B, C, H_l, W_l) each.
            image_index: the image the boxes belong to.
            boxes: (N, 4) its candidate boxes (GT boxes included when added as proposals).
            assign_result: their assignment to ``gt``.
            gt: the image's GT Instances.

        Returns:
            (N,) classification plus (positives) box loss per candidate; ``-inf`` for ignored
            boxes, which are never sampled.
        """
        matched = assign_result.matched_gt
        positives = torch.nonzero(matched >= 0).flatten()
        negatives = torch.nonzero(matched == BACKGROUND).flatten()
        candidates = SamplingResult(boxes=boxes, pos_inds=positives, neg_inds=negatives,
                                    pos_gt_inds=matched[positives])
        labels, box_targets = self.bbox_head.get_targets([candidates], [gt])
        rois = boxes_to_rois([candidates.sampled_boxes])
        out = self.outputs([f[image_index:image_index + 1] for f in feats], rois)
        losses = self.bbox_head.roi_losses(out.cls_score, out.bbox_pred, rois, labels,
                                           box_targets)
        hardness = boxes.new_full((boxes.shape[0],), float("-inf"))
        hardness[torch.cat([positives, negatives])] = losses.to(hardness.dtype)
        return hardness

    def loss(
        self, feats: Sequence[Tensor], sampling_results: Sequence[SamplingResult],
        gts: Sequence[Instances],
    ) -> tuple[dict[str, Tensor], BoxOutputs]:
        """``{'loss_cls', 'loss_bbox'}`` on the sampled RoIs, and the outputs they came from.

        Args:
            feats: feature levels, (B, C, H_l, W_l) each.
            sampling_results: per image, from :meth:`sample`.
            gts: per image, its GT Instances (possibly empty).

        Returns:
            The losses and the stage's BoxOutputs (positives first within each image, with
            ``labels`` set), for a mask branch or the next stage.
        """
        rois = boxes_to_rois([r.sampled_boxes for r in sampling_results])
        out = self.outputs(feats, rois)
        labels, box_targets = self.bbox_head.get_targets(sampling_results, gts)
        out.labels = labels
        losses = self.bbox_head.loss_by_outputs(out.cls_score, out.bbox_pred, rois, labels,
                                                box_targets)
        return losses, out

    def predict(
        self, feats: Sequence[Tensor], proposals: Sequence[Instances],
        img_shapes: Sequence[Sequence[int]],
    ) -> list[Instances]:
        """Detections per image (``boxes``, ``labels``, ``scores``) in ``img_shape``
        coordinates: score, decode, threshold and per-class NMS the proposals."""
        out = self.outputs(feats, boxes_to_rois([p.boxes for p in proposals]))
        return self.bbox_head.predict_by_outputs(out.cls_score, out.bbox_pred, out.rois,
                                                 img_shapes)

    def refine(
        self, rois: Tensor, labels: Tensor, bbox_pred: Tensor,
        img_shapes: Sequence[Sequence[int]],
    ) -> list[Instances]:
        """Decode this stage's deltas into the next stage's proposals, one per RoI.

        Args:
            rois: (R, 5) the RoIs the deltas were predicted for.
            labels: (R,) class whose deltas to apply (see :func:`refinement_labels`); ignored
                by class-agnostic box heads.
            bbox_pred: (R, 4 * num_classes) or (R, 4) deltas.
            img_shapes: ``(h, w)`` of each image.

        Returns:
            Per image, Instances whose ``boxes`` (R_i, 4) are the refined, clipped, detached
            RoIs in their original order (GT boxes added as proposals included).
        """
        boxes = self.bbox_head.refine_boxes(rois, labels, bbox_pred, img_shapes)
        return [Instances(boxes=b, labels=b.new_zeros((b.shape[0],), dtype=torch.int64))
                for b in boxes]

    def refine_sampled(
        self, out: BoxOutputs, sampling_results: Sequence[SamplingResult],
        img_shapes: Sequence[Sequence[int]],
    ) -> list[Instances]:
        """The next stage's proposals in training: every sampled RoI of :meth:`loss` refined
        by its target class's deltas (background: the best foreground class), except the GT
        boxes that were added as proposals (the next stage adds the GT again itself).

        Args:
            out: this stage's outputs from :meth:`loss` (``labels`` set).
            sampling_results: per image, the results ``out`` was computed for.
            img_shapes: ``(h, w)`` of each image.

        Returns:
            Per image, Instances with the refined ``boxes`` (R_i - G_i, 4) in sampled order.
        """
        labels = refinement_labels(out.labels, out.cls_score, self.num_classes)
        refined = self.refine(out.rois, labels, out.bbox_pred, img_shapes)
        return [r[~res.sampled_is_gt] for r, res in zip(refined, sampling_results)]
