"""Training targets shared by the RoI heads: which proposals to train on and their masks."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from detbox.errors import ConfigError, DetboxError
from detbox.models.roi_heads.mask_head import crop_mask_targets
from detbox.models.roi_heads.mask_iou_head import mask_area_inside_boxes
from detbox.models.task_modules.assigners import AssignResult
from detbox.structures import DetSample, Instances

__all__ = [
    "PositiveMaskTargets",
    "SamplingResult",
    "positive_mask_targets",
    "sample_proposals",
]

#: ``hardness(image_index, boxes, assign_result, gt) -> (N,)`` loss of each candidate box.
HardnessFn = Callable[[int, Tensor, AssignResult, Instances], Tensor]


@dataclass
class SamplingResult:
    """The RoIs one image trains on.

    Attributes:
        boxes: (N, 4) every candidate box; when GT boxes were added as proposals they come
            first, so ``boxes[:num_gts]`` are the GT boxes.
        pos_inds: (P,) int64 indices into ``boxes`` of the sampled positives.
        neg_inds: (Q,) int64 indices into ``boxes`` of the sampled negatives.
        pos_gt_inds: (P,) int64 index of the GT box each positive is matched to.
        num_gts: how many GT boxes were prepended to ``boxes`` (0 if none were).
    """

    boxes: Tensor
    pos_inds: Tensor
    neg_inds: Tensor
    pos_gt_inds: Tensor
    num_gts: int = 0

    @property
    def pos_boxes(self) -> Tensor:
        """(P, 4) the sampled positive boxes."""
        return self.boxes[self.pos_inds]

    @property
    def neg_boxes(self) -> Tensor:
        """(Q, 4) the sampled negative boxes."""
        return self.boxes[self.neg_inds]

    @property
    def sampled_boxes(self) -> Tensor:
        """(P + Q, 4) positives first, then negatives: the order heads compute targets in."""
        return torch.cat([self.pos_boxes, self.neg_boxes])

    @property
    def sampled_is_gt(self) -> Tensor:
        """(P + Q,) bool, in :attr:`sampled_boxes` order: which sampled RoIs are GT boxes
        added as proposals (only positives can be: a GT matches itself)."""
        is_gt = self.pos_inds < self.num_gts
        return torch.cat([is_gt, is_gt.new_zeros((self.num_neg,))])

    @property
    def num_pos(self) -> int:
        return int(self.pos_inds.numel())

    @property
    def num_neg(self) -> int:
        return int(self.neg_inds.numel())


@torch.no_grad()
def sample_proposals(
    assigner, sampler, proposals: Sequence[Instances], gts: Sequence[Instances],
    samples: Sequence[DetSample], hardness: HardnessFn | None = None,
) -> list[SamplingResult]:
    """Assign each image's proposals to its GT and sample the RoIs to train on.

    With ``sampler.add_gt_as_proposals`` the GT boxes are prepended to the proposals and each is
    matched to itself, so every object has at least one positive RoI even when the proposals
    are still poor (early in training). A hard-mining sampler (``sampler.hard_mining``, OHEM)
    also gets every candidate's loss from ``hardness``.

    Args:
        assigner: a ``MaxIoUAssigner``-like object.
        sampler: a ``RandomSampler``-like object.
        proposals: per image, Instances with ``boxes`` (N_i, 4) in ``img_shape`` coordinates.
        gts: per image, the GT Instances (possibly empty).
        samples: per image, its DetSample (for ``ignored_boxes``).
        hardness: scores the candidates for a hard-mining sampler (see ``HardnessFn``).

    Returns:
        One SamplingResult per image.
    """
    hard_mining = getattr(sampler, "hard_mining", False)
    if hard_mining and hardness is None:
        raise ConfigError(f"{type(sampler).__name__} mines hard RoIs by their loss, which this "
                          "head does not compute; use a RandomSampler here")
    results = []
    for i, (props, gt, sample) in enumerate(zip(proposals, gts, samples)):
        boxes = props.boxes.detach()
        gt_boxes = gt.boxes.to(boxes.dtype)
        ignored = sample.ignored_boxes.to(boxes.device)
        num_gts = 0
        if getattr(sampler, "add_gt_as_proposals", False) and gt_boxes.shape[0] > 0:
            num_gts = int(gt_boxes.shape[0])
            boxes = torch.cat([gt_boxes, boxes])
        assign = assigner.assign(boxes, gt_boxes, ignored)
        if num_gts:
            assign.matched_gt[:num_gts] = torch.arange(num_gts, device=boxes.device)
        if hard_mining:
            pos_inds, neg_inds = sampler.sample(assign, hardness(i, boxes, assign, gt))
        else:
            pos_inds, neg_inds = sampler.sample(assign)
        results.append(SamplingResult(boxes=boxes, pos_inds=pos_inds, neg_inds=neg_inds,
                                      pos_gt_inds=assign.matched_gt[pos_inds], num_gts=num_gts))
    return results


@dataclass
class PositiveMaskTargets:
    """Mask targets of the positive RoIs of a batch, concatenated over images.

    Attributes:
        labels: (P,) int64 GT class of each positive.
        masks: (P, M, M) binary crops of the matched GT masks.
        area_ratios: (P,) fraction of each GT mask inside its RoI (for MaskIoU targets).
    """

    labels: Tensor
    masks: Tensor
    area_ratios: Tensor


def positive_mask_targets(
    sampling_results: Sequence[SamplingResult], gts: Sequence[Instances], mask_size: int,
    with_area_ratios: bool = False,
) -> PositiveMaskTargets:
    """Crop and resample each positive's GT mask to ``mask_size`` (see ``crop_mask_targets``)."""
    labels, masks, ratios = [], [], []
    for res, gt in zip(sampling_results, gts):
        if res.num_pos and gt.masks is None:
            raise DetboxError(
                "the mask head needs GT masks, but a training sample has none: load the "
                "dataset with masks (e.g. with_mask=True) or drop the mask head"
            )
        labels.append(gt.labels[res.pos_gt_inds])
        if res.num_pos == 0:
            masks.append(res.boxes.new_zeros((0, mask_size, mask_size)))
            ratios.append(res.boxes.new_zeros((0,)))
            continue
        masks.append(crop_mask_targets(gt.masks, res.pos_boxes, res.pos_gt_inds, mask_size))
        if with_area_ratios:
            ratios.append(mask_area_inside_boxes(gt.masks, res.pos_boxes, res.pos_gt_inds))
        else:
            ratios.append(res.boxes.new_ones((res.num_pos,)))
    return PositiveMaskTargets(torch.cat(labels), torch.cat(masks), torch.cat(ratios))
