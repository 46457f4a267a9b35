"""Region Proposal Network head (Ren et al., 2015): class-agnostic objectness and box deltas."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

import torch
from torch import Tensor, nn

from detbox.models.dense_heads.dense_head import DenseHead
from detbox.models.dense_heads.dense_utils import (
    ProposalSettings,
    flatten_level,
    flatten_levels,
    select_proposals,
)
from detbox.registry import MODELS, TASK_UTILS
from detbox.structures import DetSample, Instances

__all__ = ["ProposalSettings", "RPNHead"]

DEFAULT_ANCHOR_GENERATOR = MappingProxyType({
    "type": "AnchorGenerator", "strides": (4, 8, 16, 32, 64), "ratios": (0.5, 1.0, 2.0),
    "scales": (8,),
})
DEFAULT_ASSIGNER = MappingProxyType({
    "type": "MaxIoUAssigner", "pos_iou_thr": 0.7, "neg_iou_thr": 0.3, "min_pos_iou": 0.3,
    "allow_low_quality_matches": True, "ignore_iof_thr": -1.0,
})
DEFAULT_SAMPLER = MappingProxyType({
    "type": "RandomSampler", "num": 256, "pos_fraction": 0.5, "add_gt_as_proposals": False,
})
DEFAULT_BOX_CODER = MappingProxyType({"type": "DeltaXYWHBoxCoder"})
DEFAULT_LOSS_CLS = MappingProxyType({"type": "CrossEntropyLoss", "use_sigmoid": True})
DEFAULT_LOSS_BBOX = MappingProxyType({"type": "L1Loss"})


@MODELS.register
class RPNHead(DenseHead, nn.Module):
    """A shared 3x3 conv, then per anchor one objectness logit and four deltas.

    Training samples ``sampler.num`` anchors per image (half positive at most) among those the
    assigner labels, with IoU >= 0.7 positive and < 0.3 negative, and each GT's best anchor(s)
    positive. Proposals are the top ``nms_pre`` anchors per level, decoded, clipped, NMS-ed per
    level, then the best ``max_per_img`` overall.

    Args:
        in_channels: channels of every input level.
        feat_channels: channels of the shared conv(s).
        num_convs: shared 3x3 convs (each followed by ReLU).
        anchor_generator, assigner, sampler, box_coder: ``TASK_UTILS`` configs; the defaults
            are the paper's.
        loss_cls: ``MODELS`` config of the objectness loss (sigmoid cross-entropy).
        loss_bbox: ``MODELS`` config of the box loss.
        train_proposals: ``ProposalSettings`` keys used by :meth:`loss_and_predict`.
        test_proposals: ``ProposalSettings`` keys used by :meth:`predict`.
    """

    def __init__(
        self,
        *,
        in_channels: int = 256,
        feat_channels: int = 256,
        num_convs: int = 1,
        anchor_generator: Mapping[str, Any] | Any = DEFAULT_ANCHOR_GENERATOR,
        assigner: Mapping[str, Any] | Any = DEFAULT_ASSIGNER,
        sampler: Mapping[str, Any] | Any = DEFAULT_SAMPLER,
        box_coder: Mapping[str, Any] | Any = DEFAULT_BOX_CODER,
        loss_cls: Mapping[str, Any] | nn.Module = DEFAULT_LOSS_CLS,
        loss_bbox: Mapping[str, Any] | nn.Module = DEFAULT_LOSS_BBOX,
        train_proposals: Mapping[str, Any] | ProposalSettings = MappingProxyType(
            {"nms_pre": 2000, "max_per_img": 1000}),
        test_proposals: Mapping[str, Any] | ProposalSettings = MappingProxyType(
            {"nms_pre": 1000, "max_per_img": 1000}),
    ) -> None:
        super().__init__()
        self.anchor_generator = TASK_UTILS.build(anchor_generator)
        self.assigner = TASK_UTILS.build(assigner)
        self.sampler = TASK_UTILS.build(sampler)
        self.box_coder = TASK_UTILS.build(box_coder)
        self.loss_cls = MODELS.build(loss_cls)
        self.loss_bbox = MODELS.build(loss_bbox)
        self.train_proposals = ProposalSettings.from_config(train_proposals, "train_proposals")
        self.test_proposals = ProposalSettings.from_config(test_proposals, "test_proposals")
        num_anchors = self.anchor_generator.num_anchors
        convs: list[nn.Module] = []
        for i in range(num_convs):
            convs += [nn.Conv2d(in_channels if i == 0 else feat_channels, feat_channels, 3,
                                padding=1), nn.ReLU(inplace=True)]
        self.convs = nn.Sequential(*convs)
        out = feat_channels if num_convs else in_channels
        self.cls_logits = nn.Conv2d(out, num_anchors, 1)
        self.box_deltas = nn.Conv2d(out, num_anchors * 4, 1)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, std=0.01)
                nn.init.zeros_(m.bias)

    def forward(self, feats: Sequence[Tensor]) -> tuple[list[Tensor], list[Tensor]]:
        """Raw outputs per level.

        Args:
            feats: one (B, in_channels, H_l, W_l) map per anchor level.

        Returns:
            ``cls_logits`` per level (B, A, H_l, W_l) and ``box_deltas`` per level
            (B, A * 4, H_l, W_l), channel ``a * 4 + k``.
        """
        cls_logits, box_deltas = [], []
        for x in feats:
            x = self.convs(x)
            cls_logits.append(self.cls_logits(x))
            box_deltas.append(self.box_deltas(x))
        return cls_logits, box_deltas

    def loss_and_predict(
        self, feats: Sequence[Tensor], samples: Sequence[DetSample]
    ) -> tuple[dict[str, Tensor], list[Instances]]:
        """Losses and (detached) training proposals from one forward pass."""
        cls_logits, box_deltas = self(feats)
        losses = self.loss_by_outputs(cls_logits, box_deltas, samples)
        proposals = self.predict_by_outputs(cls_logits, box_deltas, samples, self.train_proposals)
        return losses, proposals

    def predict(self, feats: Sequence[Tensor], samples: Sequence[DetSample]) -> list[Instances]:
        """Test-time proposals per image (``test_proposals`` settings), ``img_shape`` coords."""
        cls_logits, box_deltas = self(feats)
        return self.predict_by_outputs(cls_logits, box_deltas, samples, self.test_proposals)

    def loss_by_outputs(
        self, cls_logits: Sequence[Tensor], box_deltas: Sequence[Tensor],
        samples: Sequence[DetSample],
    ) -> dict[str, Tensor]:
        """Sigmoid cross-entropy on sampled anchors, box loss on sampled positives.

        Both losses are divided by the number of sampled anchors in the batch.
        """
        anchors = torch.cat(self.anchors(cls_logits))
        logits = flatten_levels(cls_logits, 1)[..., 0]  # (B, N)
        deltas = flatten_levels(box_deltas, 4)  # (B, N, 4)
        sel_logits, sel_labels, pos_deltas, pos_targets = [], [], [], []
        for i, sample in enumerate(samples):
            gt_boxes = _gt_boxes(sample, anchors)
            assign = self.assigner.assign(anchors, gt_boxes, sample.ignored_boxes)
            pos_inds, neg_inds = self.sampler.sample(assign)
            inds = torch.cat([pos_inds, neg_inds])
            sel_logits.append(logits[i, inds])
            sel_labels.append((torch.arange(inds.numel(), device=inds.device) < pos_inds.numel())
                              .to(logits.dtype))
            pos_deltas.append(deltas[i, pos_inds])
            pos_targets.append(self.box_coder.encode(
                anchors[pos_inds], gt_boxes[assign.matched_gt[pos_inds]]))
        sel_logits, sel_labels = torch.cat(sel_logits), torch.cat(sel_labels)
        num_sampled = max(int(sel_labels.numel()), 1)
        loss_cls = self.loss_cls(sel_logits, sel_labels, avg_factor=num_sampled)
        pos_deltas, pos_targets = torch.cat(pos_deltas), torch.cat(pos_targets)
        if pos_deltas.shape[0] == 0:
            loss_bbox = deltas.sum() * 0.0
        else:
            loss_bbox = self.loss_bbox(pos_deltas, pos_targets, avg_factor=num_sampled)
        return {"loss_rpn_cls": loss_cls, "loss_rpn_bbox": loss_bbox}

    @torch.no_grad()
    def predict_by_outputs(
        self, cls_logits: Sequence[Tensor], box_deltas: Sequence[Tensor],
        samples: Sequence[DetSample], settings: ProposalSettings | None = None,
    ) -> list[Instances]:
        """Proposals per image: ``boxes`` (K, 4) in ``img_shape`` pixels, ``scores`` (K,)
        objectness probabilities, ``labels`` (K,) zeros; sorted by score."""
        settings = settings or self.test_proposals
        anchors = self.anchors(cls_logits)
        logits = [flatten_level(x, 1)[..., 0] for x in cls_logits]
        deltas = [flatten_level(x, 4) for x in box_deltas]
        return [
            select_proposals(anchors, [x[i] for x in logits], [x[i] for x in deltas],
                             self._decode, sample.img_shape, settings)
            for i, sample in enumerate(samples)
        ]

    def _decode(self, anchors: Tensor, deltas: Tensor, img_shape: Sequence[int]) -> Tensor:
        """(K, 4) anchors and deltas -> (K, 4) float32 boxes clipped to ``img_shape``."""
        return self.box_coder.decode(anchors, deltas.float(), max_shape=img_shape)


def _gt_boxes(sample: DetSample, anchors: Tensor) -> Tensor:
    return sample.gt_or_empty(anchors.device).boxes.to(dtype=anchors.dtype)
