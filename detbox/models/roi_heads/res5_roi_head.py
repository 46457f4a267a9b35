"""The C4 RoI head: ResNet's last stage runs on 14x14 RoIs of C4 (Faster / Mask R-CNN C4)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any, Literal

import torch
from torch import Tensor, nn

from detbox.errors import CheckpointError
from detbox.models.backbones.resnet import make_resnet_stage, read_torchvision_state_dict
from detbox.models.layers.norm import BATCH_NORMS
from detbox.models.roi_heads.box_branch import BoxBranch
from detbox.models.roi_heads.mask_branch import MaskBranch
from detbox.models.roi_heads.standard_roi_head import DEFAULT_RCNN_ASSIGNER, DEFAULT_RCNN_SAMPLER
from detbox.registry import MODELS, TASK_UTILS
from detbox.structures import DetSample, Instances

__all__ = ["Res5RoIHead"]

DEFAULT_C4_EXTRACTOR = MappingProxyType({
    "type": "MultiLevelRoIExtractor", "output_size": 14, "featmap_strides": (16,)})


@MODELS.register
class Res5RoIHead(nn.Module):
    """RoIAlign on C4 (14x14), res5 (-> 7x7), then the box head and, sharing the res5 features,
    the mask head.

    The box head is typically ``ConvFCBBoxHead(with_avg_pool=True, num_fcs=0,
    in_channels=2048)``; the mask head ``FCNMaskHead(num_convs=0, in_channels=2048,
    roi_size=7)`` (14x14 masks).

    Args:
        bbox_head: ``MODELS`` config of the box head.
        roi_extractor: ``MODELS`` config of the C4 pooler.
        depth: ResNet depth whose res5 is built (its ImageNet weights are ``layer4.*``).
        style: ``'caffe'`` for a caffe-style backbone (stride in res5's first 1x1 conv; see
            ``ResNet``), else ``'pytorch'``.
        norm: normalization layer of res5 (``'FrozenBN'`` by default, like the backbone).
        norm_eval: keep res5's BN layers in eval mode while training.
        mask_head: ``MODELS`` config of the mask head, or None.
        assigner: ``TASK_UTILS`` config of the proposal assigner.
        sampler: ``TASK_UTILS`` config of the RoI sampler.
    """

    def __init__(
        self,
        *,
        bbox_head: Mapping[str, Any] | nn.Module,
        roi_extractor: Mapping[str, Any] | nn.Module = DEFAULT_C4_EXTRACTOR,
        depth: int = 50,
        style: Literal["pytorch", "caffe"] = "pytorch",
        norm: str = "FrozenBN",
        norm_eval: bool = True,
        mask_head: Mapping[str, Any] | nn.Module | None = None,
        assigner: Mapping[str, Any] | Any = DEFAULT_RCNN_ASSIGNER,
        sampler: Mapping[str, Any] | Any = DEFAULT_RCNN_SAMPLER,
    ) -> None:
        super().__init__()
        self.roi_extractor = MODELS.build(roi_extractor)
        self.res5 = make_resnet_stage(depth=depth, stage=3, norm=norm, style=style)
        self.norm_eval = norm_eval
        self.bbox_head = MODELS.build(bbox_head)
        self.with_mask = mask_head is not None
        self.mask_head = MODELS.build(mask_head) if self.with_mask else None
        self.mask_iou_head = None
        self.assigner = TASK_UTILS.build(assigner)
        self.sampler = TASK_UTILS.build(sampler)

    @property
    def num_classes(self) -> int:
        return self.bbox_head.num_classes

    def train(self, mode: bool = True) -> Res5RoIHead:
        super().train(mode)
        if mode and self.norm_eval:
            for module in self.res5.modules():
                if isinstance(module, BATCH_NORMS):
                    module.eval()
        return self

    def load_torchvision_weights(self, checkpoint: str | os.PathLike | Mapping) -> None:
        """Initialize res5 from the ``layer4.*`` keys of a torchvision ImageNet ResNet."""
        source = read_torchvision_state_dict(checkpoint)
        weights = {k.removeprefix("layer4."): v for k, v in source.items()
                   if k.startswith("layer4.")}
        own = self.res5.state_dict()
        missing = sorted(k for k in own if k not in weights
                         and not k.endswith("num_batches_tracked"))
        if missing:
            raise CheckpointError(f"res5 weights missing from the checkpoint: {missing[:3]}")
        try:
            self.res5.load_state_dict({k: v for k, v in weights.items() if k in own},
                                      strict=False)
        except RuntimeError as exc:
            raise CheckpointError(f"res5 checkpoint does not fit: {exc}") from exc

    def res5_features(self, feats: Sequence[Tensor], rois: Tensor) -> Tensor:
        """(R, 5) RoIs -> (R, C5, 7, 7) res5 features of their 14x14 C4 crops."""
        return self.res5(self.roi_extractor(feats, rois))

    def forward(self, feats: Sequence[Tensor], rois: Tensor) -> tuple[Tensor, Tensor]:
        """Raw box head outputs for (R, 5) RoIs."""
        return self.bbox_head(self.res5_features(feats, rois))

    @property
    def box_branch(self) -> BoxBranch:
        """The box stage: C4 pooling + res5, then the box head."""
        return BoxBranch(roi_extractor=self.res5_features, bbox_head=self.bbox_head,
                         assigner=self.assigner, sampler=self.sampler)

    @property
    def mask_branch(self) -> MaskBranch | None:
        """The mask stage on the same res5 features (None without a mask head)."""
        if not self.with_mask:
            return None
        return MaskBranch(roi_extractor=self.res5_features, mask_head=self.mask_head)

    def loss(
        self, feats: Sequence[Tensor], proposals: Sequence[Instances],
        samples: Sequence[DetSample],
    ) -> dict[str, Tensor]:
        """``loss_cls``, ``loss_bbox`` (+ ``loss_mask``); see ``StandardRoIHead.loss``."""
        device = feats[0].device
        gts = [s.gt_or_empty(device) for s in samples]
        box = self.box_branch
        results = box.sample(proposals, gts, samples, feats)
        losses, out = box.loss(feats, results, gts)
        if self.with_mask:
            # Positives come first within each image's sampled RoIs: reuse their res5 features.
            pos_rows, start = [], 0
            for r in results:
                pos_rows.append(torch.arange(start, start + r.num_pos, device=device))
                start += r.num_pos + r.num_neg
            pos_feats = out.roi_feats[torch.cat(pos_rows)]
            losses.update(self.mask_branch.loss_by_feats(pos_feats, results, gts))
        return losses

    def predict(
        self, feats: Sequence[Tensor], proposals: Sequence[Instances],
        samples: Sequence[DetSample],
    ) -> list[Instances]:
        """Detections per image in ``img_shape`` coordinates (``masks`` as per-box probabilities,
        see ``StandardRoIHead.predict``)."""
        dets = self.box_branch.predict(feats, proposals, [s.img_shape for s in samples])
        if self.with_mask:
            dets = self.mask_branch.predict(feats, dets)
        return dets
