"""FreeAnchor (Zhang et al., 2019, "FreeAnchor: Learning to Match Anchors to Visual Objects").

Instead of fixing positives by IoU, each object gets a *bag* of its ``pre_anchor_topk``
best-overlapping anchors and the network learns which of them should detect it:

- positive bag likelihood: per anchor ``j`` of object ``i``'s bag, ``P_ij = P_cls * P_loc`` with
  ``P_loc = exp(-box_loss)``; the bag's probability is their *mean-max* (a weighted mean whose
  weights ``1 / (1 - P)`` favour the best anchor yet keep every anchor's gradient); the loss is
  ``-log`` of it, averaged over objects, times ``alpha``;
- negative likelihood: every anchor and class is background with probability
  ``1 - P_cls * (1 - P_box)``, where ``P_box`` saturates the IoU of the anchor's *predicted*
  box with the objects of that class (0 below ``bbox_thr``, 1 at the object's best IoU); the
  loss is focal-style, ``P**gamma * -log(1 - P)``, divided by ``objects * pre_anchor_topk``,
  times ``1 - alpha``.

The head is RetinaNet's (towers, anchors, decoding, post-processing); only the loss differs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Annotated, Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.ops import box_iou

from detbox.models.dense_heads.dense_utils import flatten_levels
from detbox.models.dense_heads.retina_head import DEFAULT_ANCHOR_GENERATOR, RetinaHead
from detbox.registry import MODELS
from detbox.structures import DetSample
from detbox.typecheck import Positive, Probability, Range

__all__ = [
    "FreeAnchorRetinaHead", "mean_max", "negative_bag_loss", "positive_bag_loss",
    "saturated_box_prob", "select_bags",
]

DEFAULT_BOX_CODER = MappingProxyType(
    {"type": "DeltaXYWHBoxCoder", "target_stds": (0.1, 0.1, 0.2, 0.2)}
)
DEFAULT_LOSS_BBOX = MappingProxyType({"type": "SmoothL1Loss", "beta": 0.11, "loss_weight": 0.75})


def select_bags(anchors: Tensor, gt_boxes: Tensor, k: int) -> Tensor:
    """(G, min(k, N)) indices of each GT's ``k`` anchors of highest IoU (its bag)."""
    iou = box_iou(gt_boxes, anchors)
    return iou.topk(min(k, anchors.shape[0]), dim=1).indices


def mean_max(probs: Tensor) -> Tensor:
    """(G, K) probabilities -> (G,) mean weighted by ``1 / (1 - p)``, a smooth maximum."""
    weights = 1.0 / (1.0 - probs).clamp(min=1e-12)
    weights = weights / weights.sum(dim=1, keepdim=True)
    return (weights * probs).sum(dim=1).clamp(0.0, 1.0)


def positive_bag_loss(cls_probs: Tensor, box_probs: Tensor) -> Tensor:
    """(G, K) class and localization probabilities of each bag -> (G,) ``-log mean-max``."""
    bag = mean_max(cls_probs * box_probs)
    return F.binary_cross_entropy(bag, torch.ones_like(bag), reduction="none")


def negative_bag_loss(cls_probs: Tensor, box_probs: Tensor, gamma: float) -> Tensor:
    """Element-wise focal-style background loss of ``P = cls_probs * (1 - box_probs)``."""
    probs = (cls_probs * (1.0 - box_probs)).clamp(1e-12, 1.0 - 1e-12)
    return probs**gamma * F.binary_cross_entropy(probs, torch.zeros_like(probs), reduction="none")


def saturated_box_prob(
    pred_boxes: Tensor, gt_boxes: Tensor, gt_labels: Tensor, num_classes: int, thr: float
) -> Tensor:
    """(N, C) probability that predicted box ``n`` covers an object of class ``c``.

    Per GT, the IoU with each predicted box is mapped linearly from ``[thr, best IoU]`` to
    ``[0, 1]`` (clamped); per class, the maximum over that class's GTs.

    Args:
        pred_boxes: (N, 4) decoded predictions; gt_boxes: (G, 4); gt_labels: (G,) int64.
    """
    probs = pred_boxes.new_zeros((num_classes, pred_boxes.shape[0]))
    if gt_boxes.shape[0] == 0:
        return probs.t()
    iou = box_iou(gt_boxes, pred_boxes)  # (G, N)
    best = iou.max(dim=1, keepdim=True).values.clamp(min=thr + 1e-12)
    per_gt = ((iou - thr) / (best - thr)).clamp(0.0, 1.0)
    probs.scatter_reduce_(0, gt_labels[:, None].expand_as(per_gt), per_gt, "amax")
    return probs.t()


@MODELS.register
class FreeAnchorRetinaHead(RetinaHead):
    """RetinaNet's head trained with FreeAnchor's bag likelihoods (no IoU assigner, no focal loss).

    Args:
        num_classes, in_channels, feat_channels, stacked_convs, norm, prior_prob,
            anchor_generator, score_thr, nms_pre, nms_iou_thr, max_per_img, nms: as
            ``RetinaHead``.
        box_coder: ``TASK_UTILS`` config; FreeAnchor's deltas use stds (0.1, 0.1, 0.2, 0.2).
        loss_bbox: a ``WeightedLoss`` on deltas: ``exp(-loss_weight * loss summed over
            coordinates)`` is an anchor's localization likelihood.
        pre_anchor_topk: anchors in each object's bag.
        bbox_thr: IoU below which a predicted box gets no saturated box probability.
        gamma: focusing exponent of the negative loss.
        alpha: weight of the positive loss (``1 - alpha`` for the negative).
    """

    def __init__(
        self,
        *,
        num_classes: Annotated[int, Positive],
        in_channels: Annotated[int, Positive],
        feat_channels: Annotated[int, Positive] = 256,
        stacked_convs: Annotated[int, Range(ge=0)] = 4,
        norm: str | None = None,
        prior_prob: Annotated[float, Range(gt=0, lt=1)] = 0.01,
        anchor_generator: Mapping[str, Any] | Any = DEFAULT_ANCHOR_GENERATOR,
        box_coder: Mapping[str, Any] | Any = DEFAULT_BOX_CODER,
        loss_bbox: Mapping[str, Any] | nn.Module = DEFAULT_LOSS_BBOX,
        pre_anchor_topk: Annotated[int, Positive] = 50,
        bbox_thr: Annotated[float, Range(ge=0, lt=1)] = 0.6,
        gamma: Annotated[float, Range(ge=0)] = 2.0,
        alpha: Annotated[float, Probability] = 0.5,
        score_thr: Annotated[float, Probability] = 0.05,
        nms_pre: Annotated[int, Range(ge=-1)] = 1000,
        nms_iou_thr: Annotated[float, Probability] = 0.5,
        max_per_img: Annotated[int, Positive] = 100,
        nms: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(
            num_classes=num_classes, in_channels=in_channels, feat_channels=feat_channels,
            stacked_convs=stacked_convs, norm=norm, prior_prob=prior_prob,
            anchor_generator=anchor_generator, box_coder=box_coder, loss_bbox=loss_bbox,
            score_thr=score_thr, nms_pre=nms_pre, nms_iou_thr=nms_iou_thr,
            max_per_img=max_per_img, nms=nms,
        )
        self.assigner = None  # the bags replace the IoU assigner and the focal loss
        self.loss_cls = None
        self.pre_anchor_topk = pre_anchor_topk
        self.bbox_thr = bbox_thr
        self.gamma = gamma
        self.alpha = alpha

    def loss_by_outputs(
        self,
        cls_logits: Sequence[Tensor],
        box_deltas: Sequence[Tensor],
        samples: Sequence[DetSample],
    ) -> dict[str, Tensor]:
        """``{'loss_positive_bag', 'loss_negative_bag'}`` (see the module docstring).

        Ignored regions play no part. Without any GT in the batch the positive loss is an exact
        zero that still belongs to the graph.
        """
        anchors = torch.cat(self.anchors(cls_logits))
        cls_probs = flatten_levels(cls_logits, self.num_classes).float().sigmoid()  # (B, N, C)
        deltas = flatten_levels(box_deltas, 4).float()  # (B, N, 4)
        positive, box_probs, num_gt = [], [], 0
        for i, sample in enumerate(samples):
            gt = sample.gt_or_empty(anchors.device)
            gt_boxes, gt_labels = gt.boxes.to(anchors.dtype), gt.labels
            with torch.no_grad():
                pred_boxes = self.box_coder.decode(anchors, deltas[i].detach())
                box_probs.append(saturated_box_prob(pred_boxes, gt_boxes, gt_labels,
                                                    self.num_classes, self.bbox_thr))
            if gt_boxes.shape[0] > 0:
                positive.append(self._positive_loss(anchors, cls_probs[i], deltas[i],
                                                    gt_boxes, gt_labels))
                num_gt += gt_boxes.shape[0]
        if positive:
            loss_pos = torch.cat(positive).sum() / num_gt
        else:
            loss_pos = deltas.sum() * 0.0
        negative = negative_bag_loss(cls_probs, torch.stack(box_probs), self.gamma)
        loss_neg = negative.sum() / max(1, num_gt * self.pre_anchor_topk)
        return {"loss_positive_bag": self.alpha * loss_pos,
                "loss_negative_bag": (1.0 - self.alpha) * loss_neg}

    def _positive_loss(
        self, anchors: Tensor, cls_probs: Tensor, deltas: Tensor, gt_boxes: Tensor,
        gt_labels: Tensor,
    ) -> Tensor:
        """(G,) positive bag losses of one image: (N, 4), (N, C), (N, 4), (G, 4), (G,)."""
        bags = select_bags(anchors, gt_boxes, self.pre_anchor_topk)  # (G, K)
        bag_cls = cls_probs[bags, gt_labels[:, None]]  # (G, K)
        bag_anchors = anchors[bags].reshape(-1, 4)
        targets = self.box_coder.encode(bag_anchors, gt_boxes[:, None].expand_as(anchors[bags])
                                        .reshape(-1, 4))
        box_loss = self.loss_bbox.elementwise(deltas[bags].reshape(-1, 4), targets)
        bag_box = torch.exp(-self.loss_bbox.loss_weight * box_loss.sum(dim=-1))
        return positive_bag_loss(bag_cls, bag_box.reshape(bags.shape))
