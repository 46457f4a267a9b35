"""RetinaNet head (Lin et al., 2017): per-anchor class scores and box deltas on every level."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Annotated, Any

import torch
from torch import Tensor, nn

from detbox.models.dense_heads.conv_tower import cls_reg_towers, init_dense_head
from detbox.models.dense_heads.dense_head import DenseHead
from detbox.models.dense_heads.dense_utils import (
    dense_targets,
    flatten_level,
    flatten_levels,
    select_detections,
)
from detbox.models.dense_heads.detection_settings import (
    DetectionSettings,
    WithDetectionSettings,
)
from detbox.registry import MODELS, TASK_UTILS
from detbox.structures import DetSample, Instances
from detbox.typecheck import Positive, Probability, Range

__all__ = ["RetinaHead"]

# The paper's settings, read-only so that no caller can change another's defaults.
DEFAULT_ANCHOR_GENERATOR = MappingProxyType({
    "type": "AnchorGenerator", "strides": (8, 16, 32, 64, 128), "ratios": (0.5, 1.0, 2.0),
    "octave_base_scale": 4, "scales_per_octave": 3,
})
DEFAULT_ASSIGNER = MappingProxyType({
    "type": "MaxIoUAssigner", "pos_iou_thr": 0.5, "neg_iou_thr": 0.4, "min_pos_iou": 0.0,
    "allow_low_quality_matches": True,
})
DEFAULT_BOX_CODER = MappingProxyType({"type": "DeltaXYWHBoxCoder"})
DEFAULT_LOSS_CLS = MappingProxyType(
    {"type": "FocalLoss", "alpha": 0.25, "gamma": 2.0, "loss_weight": 1.0}
)
DEFAULT_LOSS_BBOX = MappingProxyType({"type": "L1Loss", "loss_weight": 1.0})


@MODELS.register
class RetinaHead(WithDetectionSettings, DenseHead, nn.Module):
    """Two conv towers shared over levels: one classifies anchors, one regresses their boxes.

    Args:
        num_classes: foreground classes C (no background output: one sigmoid per class).
        in_channels: channels of every input level (the FPN's ``out_channels``).
        feat_channels: channels inside the towers.
        stacked_convs: 3x3 convs per tower.
        norm: ``None`` or e.g. ``'GN'`` after each tower conv.
        prior_prob: initial foreground probability, so early training is not swamped by the
            loss of ~100k easy negatives.
        anchor_generator, assigner, box_coder: ``TASK_UTILS`` configs (or built objects);
            the defaults (``DEFAULT_*`` above) are the paper's.
        loss_cls, loss_bbox: ``MODELS`` loss configs (or built objects).
        reg_decoded_bbox: regress decoded boxes instead of deltas (for IoU-type box losses).
        score_thr, nms_pre, nms_iou_thr, max_per_img, nms: test-time selection, see
            ``DetectionSettings`` (``nms=dict(type='soft_nms', ...)``: Soft-NMS).
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
        assigner: Mapping[str, Any] | Any = DEFAULT_ASSIGNER,
        box_coder: Mapping[str, Any] | Any = DEFAULT_BOX_CODER,
        loss_cls: Mapping[str, Any] | nn.Module = DEFAULT_LOSS_CLS,
        loss_bbox: Mapping[str, Any] | nn.Module = DEFAULT_LOSS_BBOX,
        reg_decoded_bbox: bool = False,
        score_thr: Annotated[float, Probability] = 0.05,
        nms_pre: Annotated[int, Range(ge=-1)] = 1000,
        nms_iou_thr: Annotated[float, Probability] = 0.5,
        max_per_img: Annotated[int, Positive] = 100,
        nms: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.anchor_generator = TASK_UTILS.build(anchor_generator)
        self.assigner = TASK_UTILS.build(assigner)
        self.box_coder = TASK_UTILS.build(box_coder)
        self.loss_cls = MODELS.build(loss_cls)
        self.loss_bbox = MODELS.build(loss_bbox)
        self.reg_decoded_bbox = reg_decoded_bbox
        self.test_settings = DetectionSettings(
            score_thr=score_thr, nms_pre=nms_pre, nms_iou_thr=nms_iou_thr,
            max_per_img=max_per_img, nms=nms)
        num_anchors = self.anchor_generator.num_anchors
        self.cls_convs, self.reg_convs, tower_out = self._towers(
            in_channels, feat_channels, stacked_convs, norm)
        self.cls_logits = nn.Conv2d(tower_out, num_anchors * num_classes, 3, padding=1)
        self.box_deltas = nn.Conv2d(tower_out, num_anchors * 4, 3, padding=1)
        init_dense_head(self, self.cls_logits, prior_prob)

    def _towers(self, in_channels: int, feat_channels: int, stacked_convs: int,
                norm: str | None) -> tuple[nn.Module, nn.Module, int]:
        """The classification and regression towers and their output channels
        (:func:`cls_reg_towers`); a subclass may build others."""
        return cls_reg_towers(in_channels, feat_channels, stacked_convs, norm)

    def forward(self, feats: Sequence[Tensor]) -> tuple[list[Tensor], list[Tensor]]:
        """Raw outputs per level.

        Args:
            feats: one (B, in_channels, H_l, W_l) map per anchor level.

        Returns:
            ``cls_logits``: per level (B, A * C, H_l, W_l), channel ``a * C + c``;
            ``box_deltas``: per level (B, A * 4, H_l, W_l), channel ``a * 4 + k``.
        """
        cls_logits = [self.cls_logits(self.cls_convs(x)) for x in feats]
        box_deltas = [self.box_deltas(self.reg_convs(x)) for x in feats]
        return cls_logits, box_deltas

    def loss_by_outputs(
        self,
        cls_logits: Sequence[Tensor],
        box_deltas: Sequence[Tensor],
        samples: Sequence[DetSample],
    ) -> dict[str, Tensor]:
        """Focal loss over all non-ignored anchors and box loss over positives.

        Both are summed over the batch and divided by the batch's number of positive anchors
        (at least 1). An image without GT contributes only negatives; with no positives in the
        batch ``loss_bbox`` is an exact zero that still belongs to the graph.

        Args:
            cls_logits, box_deltas: :meth:`forward`'s outputs.
            samples: per image, its DetSample with GT in ``img_shape`` coordinates.
        """
        anchors = torch.cat(self.anchors(cls_logits))
        logits = flatten_levels(cls_logits, self.num_classes)  # (B, N, C)
        deltas = flatten_levels(box_deltas, 4)  # (B, N, 4)
        targets = dense_targets(anchors, samples, self.assigner.assign, self.num_classes)
        positive, avg_factor = targets.positive, targets.num_pos
        # Ignored anchors get weight 0 rather than being indexed out: no copy of the
        # (B * N, C) logits forward, no scatter back into zeros backward.
        loss_cls = self.loss_cls(logits.flatten(0, 1), targets.labels.flatten(),
                                 weight=targets.valid.flatten(), avg_factor=avg_factor)
        pos_anchors = anchors.expand(len(samples), -1, -1)[positive]
        pos_deltas = deltas[positive].float()  # decode in float32 also under autocast
        pos_gt = targets.pos_gt_boxes
        if self.reg_decoded_bbox:
            pred, target = self.box_coder.decode(pos_anchors, pos_deltas), pos_gt
        else:
            pred, target = pos_deltas, self.box_coder.encode(pos_anchors, pos_gt)
        loss_bbox = self.loss_bbox(pred, target, avg_factor=avg_factor)
        return {"loss_cls": loss_cls, "loss_bbox": loss_bbox}

    def predict_by_outputs(
        self,
        cls_logits: Sequence[Tensor],
        box_deltas: Sequence[Tensor],
        samples: Sequence[DetSample],
    ) -> list[Instances]:
        """Per level: threshold, keep the top ``nms_pre`` (anchor, class) scores, decode, clip;
        then class-wise NMS over all levels and keep ``max_per_img`` (see ``select_detections``).

        Returns:
            One Instances per image with ``boxes`` (K, 4) in ``img_shape`` pixels, ``labels``
            (K,) and ``scores`` (K,), sorted by score.
        """
        anchors = self.anchors(cls_logits)
        logits = [flatten_level(x, self.num_classes) for x in cls_logits]
        deltas = [flatten_level(x, 4) for x in box_deltas]
        return [
            select_detections(
                anchors, [x[i] for x in logits], [x[i] for x in deltas], self._decode,
                sample.img_shape, self.test_settings, scores_are_logits=True,
            )
            for i, sample in enumerate(samples)
        ]

    def _decode(self, anchors: Tensor, deltas: Tensor, img_shape: Sequence[int]) -> Tensor:
        """(K, 4) anchors and deltas -> (K, 4) float32 boxes clipped to ``img_shape``."""
        return self.box_coder.decode(anchors, deltas.float(), max_shape=img_shape)
