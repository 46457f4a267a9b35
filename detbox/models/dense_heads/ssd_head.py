"""SSD head (Liu et al., 2016): one predictor per level, softmax classes, hard negative mining."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Annotated, Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from detbox.models.dense_heads.dense_head import DenseHead
from detbox.models.dense_heads.dense_utils import (
    dense_targets,
    flatten_levels,
    select_per_class_detections,
)
from detbox.models.dense_heads.detection_settings import (
    DetectionSettings,
    WithDetectionSettings,
)
from detbox.models.task_modules.hard_negatives import hard_negative_mask
from detbox.registry import MODELS, TASK_UTILS
from detbox.structures import DetSample, Instances
from detbox.typecheck import Positive, Probability, Range

__all__ = ["SSDHead", "batch_input_size"]

# SSD300's priors (torchvision's ssd300_vgg16, the paper's scales 0.07 .. 1.05 of the image).
DEFAULT_PRIOR_GENERATOR = MappingProxyType({
    "type": "SSDPriorGenerator", "aspect_ratios": ((2,), (2, 3), (2, 3), (2, 3), (2,), (2,)),
    "scales": (0.07, 0.15, 0.33, 0.51, 0.69, 0.87, 1.05), "steps": (8, 16, 32, 64, 100, 300),
})
# IoU >= 0.5 is positive, the rest background, and each GT claims its best prior.
DEFAULT_ASSIGNER = MappingProxyType({
    "type": "MaxIoUAssigner", "pos_iou_thr": 0.5, "neg_iou_thr": 0.5, "min_pos_iou": 0.0,
    "allow_low_quality_matches": True,
})
DEFAULT_BOX_CODER = MappingProxyType(
    {"type": "DeltaXYWHBoxCoder", "target_stds": (0.1, 0.1, 0.2, 0.2)}
)
DEFAULT_LOSS_CLS = MappingProxyType({"type": "CrossEntropyLoss"})
DEFAULT_LOSS_BBOX = MappingProxyType({"type": "SmoothL1Loss", "beta": 1.0})


def batch_input_size(samples: Sequence[DetSample]) -> tuple[int, int]:
    """(h, w) of the network input without divisor padding: the largest ``img_shape``."""
    return (max(int(s.img_shape[0]) for s in samples), max(int(s.img_shape[1]) for s in samples))


def _predictor(in_channels: int, out_channels: int, depthwise: bool) -> nn.Module:
    if not depthwise:
        return nn.Conv2d(in_channels, out_channels, 3, padding=1)
    # SSDlite (MobileNetV2 paper): 3x3 depthwise conv + BN + ReLU6, then a 1x1 conv.
    return nn.Sequential(
        nn.Conv2d(in_channels, in_channels, 3, padding=1, groups=in_channels, bias=False),
        nn.BatchNorm2d(in_channels, eps=0.001, momentum=0.03),
        nn.ReLU6(inplace=True),
        nn.Conv2d(in_channels, out_channels, 1),
    )


@MODELS.register
class SSDHead(WithDetectionSettings, DenseHead, nn.Module):
    """Per level, one predictor of ``C + 1`` softmax scores and one of 4 box deltas per prior.

    Args:
        num_classes: foreground classes C; the softmax has C + 1 outputs, background last.
        in_channels: channels of each input level (the backbone's ``out_channels``).
        depthwise: SSDlite predictors (depthwise-separable) instead of one 3x3 conv.
        prior_generator, assigner, box_coder: ``TASK_UTILS`` configs (or built objects);
            the defaults are SSD300's priors, IoU 0.5 matching and deltas with stds
            (0.1, 0.1, 0.2, 0.2).
        loss_cls, loss_bbox: ``MODELS`` loss configs: softmax cross-entropy and smooth L1.
        neg_pos_ratio: hard negatives kept per positive prior (3 in the paper).
        score_thr, topk, nms_iou_thr, max_per_img, nms: test-time selection, see
            ``DetectionSettings`` (``topk``, its ``nms_pre``: per class, the best priors over
            all levels kept before NMS; ``nms=dict(type='soft_nms', ...)``: Soft-NMS).
    """

    topk = WithDetectionSettings.setting("nms_pre")

    def __init__(
        self,
        *,
        num_classes: Annotated[int, Positive],
        in_channels: Sequence[int],
        depthwise: bool = False,
        prior_generator: Mapping[str, Any] | Any = DEFAULT_PRIOR_GENERATOR,
        assigner: Mapping[str, Any] | Any = DEFAULT_ASSIGNER,
        box_coder: Mapping[str, Any] | Any = DEFAULT_BOX_CODER,
        loss_cls: Mapping[str, Any] | nn.Module = DEFAULT_LOSS_CLS,
        loss_bbox: Mapping[str, Any] | nn.Module = DEFAULT_LOSS_BBOX,
        neg_pos_ratio: Annotated[float, Range(ge=0)] = 3.0,
        score_thr: Annotated[float, Probability] = 0.01,
        topk: Annotated[int, Range(ge=-1)] = 400,
        nms_iou_thr: Annotated[float, Probability] = 0.45,
        max_per_img: Annotated[int, Positive] = 200,
        nms: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.prior_generator = TASK_UTILS.build(prior_generator)
        self.assigner = TASK_UTILS.build(assigner)
        self.box_coder = TASK_UTILS.build(box_coder)
        self.loss_cls = MODELS.build(loss_cls)
        self.loss_bbox = MODELS.build(loss_bbox)
        self.neg_pos_ratio = neg_pos_ratio
        self.test_settings = DetectionSettings(
            score_thr=score_thr, nms_pre=topk, nms_iou_thr=nms_iou_thr,
            max_per_img=max_per_img, nms=nms)
        num_anchors = self.prior_generator.num_anchors
        if len(in_channels) != len(num_anchors):
            raise ValueError(f"SSDHead got {len(in_channels)} in_channels for "
                             f"{len(num_anchors)} prior levels")
        levels = list(zip(in_channels, num_anchors))
        self.cls_convs = nn.ModuleList(
            _predictor(c, a * (num_classes + 1), depthwise) for c, a in levels
        )
        self.reg_convs = nn.ModuleList(_predictor(c, a * 4, depthwise) for c, a in levels)
        self._init_weights(depthwise)

    def _init_weights(self, depthwise: bool) -> None:
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                if depthwise:
                    nn.init.normal_(module.weight, std=0.03)
                else:
                    nn.init.xavier_uniform_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def forward(self, feats: Sequence[Tensor]) -> tuple[list[Tensor], list[Tensor]]:
        """Raw outputs per level.

        Args:
            feats: one (B, in_channels[l], H_l, W_l) map per prior level.

        Returns:
            ``cls_logits``: per level (B, A_l * (C + 1), H_l, W_l), channel ``a * (C + 1) + c``
            (``c = C`` background); ``box_deltas``: per level (B, A_l * 4, H_l, W_l).
        """
        cls_logits = [conv(x) for conv, x in zip(self.cls_convs, feats)]
        box_deltas = [conv(x) for conv, x in zip(self.reg_convs, feats)]
        return cls_logits, box_deltas

    def priors(self, cls_logits: Sequence[Tensor], image_size: Sequence[int]) -> list[Tensor]:
        """Per-level (H_l * W_l * A_l, 4) priors for outputs of these sizes on this input."""
        sizes = [x.shape[-2:] for x in cls_logits]
        return self.prior_generator.grid_anchors(sizes, image_size, device=cls_logits[0].device)

    def loss_by_outputs(
        self, cls_logits: Sequence[Tensor], box_deltas: Sequence[Tensor],
        samples: Sequence[DetSample],
    ) -> dict[str, Tensor]:
        """Cross-entropy on positives and mined hard negatives, smooth L1 on positives.

        Both are summed over the batch and divided by its number of positive priors (at least
        1). An image without positives keeps no negatives either, so a batch without GT gives
        exact zeros that still belong to the graph.

        Args:
            cls_logits, box_deltas: :meth:`forward`'s outputs.
            samples: per image, its DetSample with GT in ``img_shape`` coordinates.
        """
        priors = torch.cat(self.priors(cls_logits, batch_input_size(samples)))
        logits = flatten_levels(cls_logits, self.num_classes + 1)  # (B, N, C + 1)
        deltas = flatten_levels(box_deltas, 4)  # (B, N, 4)
        targets = dense_targets(priors, samples, self.assigner.assign, self.num_classes)
        positive, avg_factor = targets.positive, targets.num_pos
        with torch.no_grad():
            ranking = F.cross_entropy(logits.detach().float().flatten(0, 1),
                                      targets.labels.flatten(), reduction="none")
        negative = hard_negative_mask(ranking.view_as(targets.labels), positive,
                                      targets.valid & ~positive, self.neg_pos_ratio)
        chosen = positive | negative
        loss_cls = self.loss_cls(logits[chosen], targets.labels[chosen], avg_factor=avg_factor)
        pos_priors = priors.expand(len(samples), -1, -1)[positive]
        target = self.box_coder.encode(pos_priors, targets.pos_gt_boxes)
        loss_bbox = self.loss_bbox(deltas[positive].float(), target, avg_factor=avg_factor)
        return {"loss_cls": loss_cls, "loss_bbox": loss_bbox}

    def predict_by_outputs(
        self, cls_logits: Sequence[Tensor], box_deltas: Sequence[Tensor],
        samples: Sequence[DetSample],
    ) -> list[Instances]:
        """Softmax scores; per class the ``topk`` priors above ``score_thr``; decode, clip;
        class-wise NMS; keep ``max_per_img`` (see ``select_per_class_detections``).

        Returns:
            One Instances per image with ``boxes`` (K, 4) in ``img_shape`` pixels, ``labels``
            (K,) and ``scores`` (K,), sorted by score.
        """
        priors = torch.cat(self.priors(cls_logits, batch_input_size(samples)))
        scores = flatten_levels(cls_logits, self.num_classes + 1).float().softmax(dim=-1)
        deltas = flatten_levels(box_deltas, 4)
        return [
            select_per_class_detections(
                priors, scores[i, :, :self.num_classes], deltas[i], self._decode,
                sample.img_shape, self.test_settings,
            )
            for i, sample in enumerate(samples)
        ]

    def _decode(self, priors: Tensor, deltas: Tensor, img_shape: Sequence[int]) -> Tensor:
        """(K, 4) priors and deltas -> (K, 4) float32 boxes clipped to ``img_shape``."""
        return self.box_coder.decode(priors, deltas.float(), max_shape=img_shape)
