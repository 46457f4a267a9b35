"""The second-stage box head: classify each RoI and refine its box."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.ops import remove_small_boxes

from detbox.models.dense_heads.dense_utils import nms_instances
from detbox.models.layers.conv_block import conv_norm_relu
from detbox.models.task_modules.nms import build_nms
from detbox.registry import MODELS, TASK_UTILS
from detbox.structures import Instances

if TYPE_CHECKING:
    from detbox.models.roi_heads.targets import SamplingResult

__all__ = ["ConvFCBBoxHead"]

# Fast R-CNN's regression targets are small; the stds scale them to about unit variance.
DEFAULT_BOX_CODER = MappingProxyType({
    "type": "DeltaXYWHBoxCoder", "target_means": (0.0, 0.0, 0.0, 0.0),
    "target_stds": (0.1, 0.1, 0.2, 0.2),
})
DEFAULT_LOSS_CLS = MappingProxyType({"type": "CrossEntropyLoss"})
DEFAULT_LOSS_BBOX = MappingProxyType({"type": "L1Loss"})


@MODELS.register
@MODELS.register(name="Shared2FCBBoxHead")
class ConvFCBBoxHead(nn.Module):
    """Optional shared convs and FCs, then a softmax classifier and a box regressor.

    With the defaults this is Faster R-CNN's FPN head (two shared 1024-d FCs, "2fc"). The C4 head
    uses ``with_avg_pool=True, num_fcs=0`` on top of res5; ``num_convs=4, num_fcs=1,
    norm='GN'`` gives the "4conv1fc" GN head.

    The classifier has ``num_classes + 1`` outputs with background at index ``num_classes``; the
    regressor predicts ``4 * num_classes`` deltas (one box per class) or 4 when class-agnostic.

    Args:
        num_classes: foreground classes C.
        in_channels: channels of the pooled RoI features.
        roi_size: side of the pooled RoI features.
        num_convs: shared 3x3 convs before the FCs.
        conv_channels: channels of those convs.
        num_fcs: shared fully connected layers.
        fc_channels: width of those layers.
        norm: normalization after each shared conv (``'BN'``, ``'GN'``, ...), or None.
        conv_cfg: the type of the shared convs, e.g. ``dict(type='ConvWS')`` (GN+WS); None:
            plain convs.
        with_avg_pool: global-average-pool the RoI features first (C4 head).
        class_agnostic: one box per RoI instead of one per class.
        box_coder: ``TASK_UTILS`` config of the delta coder.
        reg_decoded_bbox: compute ``loss_bbox`` on decoded boxes (for IoU-style losses).
        loss_cls: ``MODELS`` config of the classification loss (softmax cross-entropy).
        loss_bbox: ``MODELS`` config of the regression loss.
        score_thr: detections need a class score above this.
        nms_iou_thr: per-class NMS IoU threshold.
        nms: ``TASK_UTILS`` config of the suppressor (``dict(type='soft_nms', ...)`` for
            Soft-NMS), replacing plain NMS at ``nms_iou_thr``; None keeps plain NMS.
        max_per_img: detections kept per image after NMS.
        min_box_size: detections narrower or shorter than this (pixels) are dropped.
        with_reg: False makes a classifier only (Grid R-CNN, whose grid head places the
            boxes): ``bbox_pred`` is then all zeros (the RoIs are the boxes) and there is no
            ``loss_bbox``.
    """

    def __init__(
        self,
        *,
        num_classes: int,
        in_channels: int = 256,
        roi_size: int = 7,
        num_convs: int = 0,
        conv_channels: int = 256,
        num_fcs: int = 2,
        fc_channels: int = 1024,
        norm: str | None = None,
        conv_cfg: Mapping[str, Any] | None = None,
        with_avg_pool: bool = False,
        class_agnostic: bool = False,
        box_coder: Mapping[str, Any] | Any = DEFAULT_BOX_CODER,
        reg_decoded_bbox: bool = False,
        loss_cls: Mapping[str, Any] | nn.Module = DEFAULT_LOSS_CLS,
        loss_bbox: Mapping[str, Any] | nn.Module = DEFAULT_LOSS_BBOX,
        score_thr: float = 0.05,
        nms_iou_thr: float = 0.5,
        nms: Mapping[str, Any] | None = None,
        max_per_img: int = 100,
        min_box_size: float = 0.0,
        with_reg: bool = True,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.class_agnostic = class_agnostic
        self.reg_decoded_bbox = reg_decoded_bbox
        self.score_thr = score_thr
        self.nms_iou_thr = nms_iou_thr
        # None: plain NMS at ``self.nms_iou_thr``, read at prediction time.
        self.nms = build_nms(nms, iou_thr=nms_iou_thr) if nms is not None else None
        self.max_per_img = max_per_img
        self.min_box_size = min_box_size
        self.box_coder = TASK_UTILS.build(box_coder)
        self.loss_cls = MODELS.build(loss_cls)
        self.loss_bbox = MODELS.build(loss_bbox)

        self.convs = nn.Sequential(*[
            conv_norm_relu(in_channels if i == 0 else conv_channels, conv_channels, norm,
                           conv_cfg, path="roi_head.bbox_head.conv_cfg")
            for i in range(num_convs)
        ])
        channels = conv_channels if num_convs else in_channels
        self.avg_pool = nn.AdaptiveAvgPool2d(1) if with_avg_pool else None
        flat = channels if with_avg_pool else channels * roi_size * roi_size
        fcs: list[nn.Module] = []
        for i in range(num_fcs):
            fcs += [nn.Linear(flat if i == 0 else fc_channels, fc_channels), nn.ReLU(inplace=True)]
        self.fcs = nn.Sequential(*fcs)
        out = fc_channels if num_fcs else flat
        self.fc_cls = nn.Linear(out, num_classes + 1)
        reg_dim = 4 if class_agnostic else 4 * num_classes
        self.fc_reg = nn.Linear(out, reg_dim) if with_reg else None
        self.reg_dim = reg_dim
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.fcs.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)
        nn.init.normal_(self.fc_cls.weight, std=0.01)
        nn.init.zeros_(self.fc_cls.bias)
        if self.fc_reg is not None:
            nn.init.normal_(self.fc_reg.weight, std=0.001)
            nn.init.zeros_(self.fc_reg.bias)

    def forward(self, roi_feats: Tensor) -> tuple[Tensor, Tensor]:
        """Score and regress RoIs.

        Args:
            roi_feats: (R, C_in, roi_size, roi_size) pooled features.

        Returns:
            ``cls_score`` (R, num_classes + 1) logits and ``bbox_pred`` (R, 4 * num_classes) or
            (R, 4) deltas.
        """
        x = self.convs(roi_feats)
        x = self.avg_pool(x) if self.avg_pool is not None else x
        x = self.fcs(x.flatten(1))
        if self.fc_reg is None:
            return self.fc_cls(x), x.new_zeros((x.shape[0], self.reg_dim))
        return self.fc_cls(x), self.fc_reg(x)

    def get_targets(
        self, sampling_results: Sequence[SamplingResult], gts: Sequence[Instances]
    ) -> tuple[Tensor, Tensor]:
        """Class and box targets of the sampled RoIs, positives first within each image.

        Returns:
            ``labels`` (R,) int64 with ``num_classes`` for background, and ``box_targets``
            (R, 4): encoded deltas (decoded GT boxes with ``reg_decoded_bbox``); rows of
            negatives are zero.
        """
        labels, targets = [], []
        for res, gt in zip(sampling_results, gts):
            lab = res.boxes.new_full((res.num_pos + res.num_neg,), self.num_classes,
                                     dtype=torch.int64)
            tgt = res.boxes.new_zeros((res.num_pos + res.num_neg, 4))
            if res.num_pos:
                lab[:res.num_pos] = gt.labels[res.pos_gt_inds]
                pos_gt = gt.boxes[res.pos_gt_inds].to(tgt.dtype)
                tgt[:res.num_pos] = (pos_gt if self.reg_decoded_bbox
                                     else self.box_coder.encode(res.pos_boxes, pos_gt))
            labels.append(lab)
            targets.append(tgt)
        return torch.cat(labels), torch.cat(targets)

    def loss_by_outputs(
        self, cls_score: Tensor, bbox_pred: Tensor, rois: Tensor, labels: Tensor,
        box_targets: Tensor,
    ) -> dict[str, Tensor]:
        """``loss_cls`` over all sampled RoIs and ``loss_bbox`` over the positives.

        Both are averaged over the number of sampled RoIs R, as in Fast R-CNN.

        Args:
            cls_score: (R, num_classes + 1) logits.
            bbox_pred: (R, 4 * num_classes) or (R, 4) deltas.
            rois: (R, 5) the sampled RoIs ``(image_index, x1, y1, x2, y2)``.
            labels: (R,) int64 targets from :meth:`get_targets`.
            box_targets: (R, 4) targets from :meth:`get_targets`.
        """
        num_rois = max(int(labels.numel()), 1)
        loss_cls = self.loss_cls(cls_score, labels, avg_factor=num_rois)
        if self.fc_reg is None:
            return {"loss_cls": loss_cls}
        pos = torch.nonzero(labels < self.num_classes).flatten()
        pred = self._select_class(bbox_pred[pos], labels[pos])
        target = box_targets[pos]
        if self.reg_decoded_bbox:
            pred = self.box_coder.decode(rois[pos, 1:], pred)
        if pos.numel() == 0:
            loss_bbox = bbox_pred.sum() * 0.0
        else:
            loss_bbox = self.loss_bbox(pred, target, avg_factor=num_rois)
        return {"loss_cls": loss_cls, "loss_bbox": loss_bbox}

    def roi_losses(
        self, cls_score: Tensor, bbox_pred: Tensor, rois: Tensor, labels: Tensor,
        box_targets: Tensor,
    ) -> Tensor:
        """Each RoI's own loss, unreduced: classification, plus box regression for positives
        (how hard an RoI is, for OHEM). Arguments as in :meth:`loss_by_outputs`; returns (R,)."""
        loss = self.loss_cls.loss_weight * self.loss_cls.elementwise(cls_score.float(), labels)
        pos = torch.nonzero(labels < self.num_classes).flatten()
        if pos.numel():
            pred = self._select_class(bbox_pred[pos].float(), labels[pos])
            if self.reg_decoded_bbox:
                pred = self.box_coder.decode(rois[pos, 1:], pred)
            box = self.loss_bbox.elementwise(pred, box_targets[pos].float())
            box = box.sum(dim=-1) if box.dim() > 1 else box
            loss = loss.index_add(0, pos, self.loss_bbox.loss_weight * box)
        return loss

    def _select_class(self, bbox_pred: Tensor, labels: Tensor) -> Tensor:
        """(R, 4C) or (R, 4) deltas -> (R, 4) deltas of each RoI's class."""
        if self.class_agnostic:
            return bbox_pred
        per_class = bbox_pred.reshape(bbox_pred.shape[0], self.num_classes, 4)
        return per_class[torch.arange(per_class.shape[0], device=labels.device), labels]

    def decode_boxes(
        self, rois: Tensor, bbox_pred: Tensor, img_shape: Sequence[int] | None = None
    ) -> Tensor:
        """Refined boxes of every class: (R, 5) RoIs, deltas -> (R, num_classes, 4) xyxy."""
        if self.class_agnostic:
            bbox_pred = bbox_pred.repeat(1, self.num_classes)
        boxes = self.box_coder.decode(rois[:, 1:], bbox_pred, max_shape=img_shape)
        return boxes.reshape(rois.shape[0], self.num_classes, 4)

    def refine_boxes(
        self, rois: Tensor, labels: Tensor, bbox_pred: Tensor,
        img_shapes: Sequence[Sequence[int]],
    ) -> list[Tensor]:
        """Every RoI's box moved by its predicted deltas (a cascade's next-stage proposals).

        Nothing is dropped or reordered: row ``j`` of image ``i``'s output is the ``j``-th RoI
        of image ``i``.

        Args:
            rois: (R, 5) ``(image_index, x1, y1, x2, y2)`` in ``img_shape`` coordinates.
            labels: (R,) int64 class whose deltas to apply, in ``[0, num_classes)``; ignored by
                a class-agnostic head.
            bbox_pred: (R, 4 * num_classes) or (R, 4) deltas.
            img_shapes: ``(h, w)`` of each image, to clip the boxes to.

        Returns:
            Per image, (R_i, 4) detached float32 xyxy boxes.
        """
        deltas = self._select_class(bbox_pred.detach().float(), labels)
        boxes = []
        for i, shape in enumerate(img_shapes):
            inds = torch.nonzero(rois[:, 0] == i).flatten()
            boxes.append(self.box_coder.decode(rois[inds, 1:].detach().float(), deltas[inds],
                                               max_shape=shape))
        return boxes

    def predict_by_outputs(
        self, cls_score: Tensor, bbox_pred: Tensor, rois: Tensor,
        img_shapes: Sequence[Sequence[int]],
    ) -> list[Instances]:
        """Detections per image: decode, threshold, per-class NMS, keep the best.

        Args:
            cls_score: (R, num_classes + 1) logits of all images' RoIs.
            bbox_pred: (R, 4 * num_classes) or (R, 4) deltas.
            rois: (R, 5) ``(image_index, x1, y1, x2, y2)`` in ``img_shape`` coordinates.
            img_shapes: ``(h, w)`` of each image, to clip boxes to.

        Returns:
            One Instances per image with ``boxes`` (N, 4), ``labels`` (N,), ``scores`` (N,),
            sorted by decreasing score, in ``img_shape`` coordinates.
        """
        scores = F.softmax(cls_score.float(), dim=-1)
        return self.predict_by_scores(scores, bbox_pred, rois, img_shapes)

    def predict_by_scores(
        self, scores: Tensor, bbox_pred: Tensor, rois: Tensor,
        img_shapes: Sequence[Sequence[int]],
    ) -> list[Instances]:
        """:meth:`predict_by_outputs` from class probabilities instead of logits (e.g. a
        cascade's scores averaged over its stages).

        Args:
            scores: (R, num_classes + 1) probabilities, background last.
            bbox_pred, rois, img_shapes: as in :meth:`predict_by_outputs`.
        """
        scores = scores.float()[:, :self.num_classes]
        results = []
        for i, shape in enumerate(img_shapes):
            inds = torch.nonzero(rois[:, 0] == i).flatten()
            results.append(self._postprocess(rois[inds], bbox_pred[inds].float(), scores[inds],
                                             shape))
        return results

    def _postprocess(
        self, rois: Tensor, bbox_pred: Tensor, scores: Tensor, img_shape: Sequence[int]
    ) -> Instances:
        """One image's (R, 5) RoIs, deltas and (R, C) scores -> thresholded, NMS-ed Instances.

        Only the (RoI, class) pairs above ``score_thr`` are decoded (RoI-major order, as the
        full (R, C, 4) decode would list them), so no work goes to boxes that cannot survive.
        """
        roi_inds, labels = torch.nonzero(scores > self.score_thr, as_tuple=True)
        scores = scores[roi_inds, labels]
        if self.class_agnostic:
            deltas = bbox_pred[roi_inds]
        else:
            deltas = bbox_pred.reshape(bbox_pred.shape[0], self.num_classes, 4)[roi_inds, labels]
        boxes = self.box_coder.decode(rois[roi_inds, 1:], deltas, max_shape=img_shape)
        if self.min_box_size > 0:
            keep = remove_small_boxes(boxes, self.min_box_size)
            boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
        return nms_instances(boxes, scores, labels, self.nms_iou_thr, self.max_per_img,
                             nms=self.nms)
