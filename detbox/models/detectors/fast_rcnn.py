"""Fast R-CNN (Girshick, 2015): an RoI head on proposals computed beforehand, no RPN.

The proposals come with the data: ``detbox test RPN_CONFIG CKPT --out-proposals FILE`` writes
them, the ``LoadProposals`` transform puts each image's into ``DetSample.proposals`` (moved
with the image by the geometric transforms), and the detector reads them from there.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from torch import Tensor, nn

from detbox.errors import ConfigError
from detbox.models.detectors.base import BaseDetector
from detbox.models.detectors.two_stage import TwoStageDetector
from detbox.models.roi_heads.roi_extractor import boxes_to_rois
from detbox.registry import MODELS
from detbox.structures import DetSample, ImageBatch, Instances

__all__ = ["FORWARD_NUM_PROPOSALS", "FastRCNN"]

#: RoIs per image that :meth:`FastRCNN.forward` runs when given none (FLOPs counting): the
#: usual number of test proposals.
FORWARD_NUM_PROPOSALS = 1000


@MODELS.register
class FastRCNN(BaseDetector):
    """Backbone -> (neck) -> RoI head on each image's pre-computed proposals.

    Args:
        backbone: ``MODELS`` config of the backbone.
        roi_head: ``MODELS`` config of the RoI head (``StandardRoIHead``, ``Res5RoIHead``);
            a mask head makes it a Fast R-CNN with masks.
        neck: ``MODELS`` config of the neck, or None.
        init_cfg: see ``BaseDetector``.
    """

    def __init__(
        self,
        *,
        backbone: Mapping[str, Any] | nn.Module,
        roi_head: Mapping[str, Any] | nn.Module,
        neck: Mapping[str, Any] | nn.Module | None = None,
        init_cfg: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(backbone=backbone, neck=neck, init_cfg=init_cfg)
        self.roi_head = MODELS.build(roi_head)

    @property
    def num_classes(self) -> int:
        return self.roi_head.num_classes

    @staticmethod
    def proposals_of(samples: Sequence[DetSample]) -> list[Instances]:
        """Each sample's proposals (``boxes`` in ``img_shape`` coordinates); a clear error for
        samples the pipeline gave none."""
        missing = [s.file_name for s in samples if s.proposals is None]
        if missing:
            raise ConfigError(
                f"Fast R-CNN needs pre-computed proposals, but image '{missing[0]}' has none: "
                "add dict(type='LoadProposals', file=...) right after LoadImage in the pipeline "
                "(write the file with `detbox test RPN_CONFIG CKPT --out-proposals FILE`)"
            )
        return [s.proposals for s in samples]

    def forward(
        self, images: Tensor, proposals: Sequence[Tensor] | None = None
    ) -> dict[str, Tensor]:
        """Raw RoI head outputs for (B, 3, H, W) images and per-image (K_i, 4) proposals.

        Without proposals every image gets ``FORWARD_NUM_PROPOSALS`` whole-image boxes (for
        FLOPs counting: the cost depends on the number of RoIs, not on where they are).

        Returns:
            ``cls_score`` (R, C + 1) and ``bbox_pred`` (R, 4C) or (R, 4).
        """
        feats = self.extract_feat(images)
        if proposals is None:
            height, width = images.shape[-2:]
            whole = images.new_tensor([0.0, 0.0, float(width), float(height)])
            proposals = [whole.expand(FORWARD_NUM_PROPOSALS, 4)] * images.shape[0]
        cls_score, bbox_pred = self.roi_head(feats, boxes_to_rois(list(proposals)))
        return {"cls_score": cls_score, "bbox_pred": bbox_pred}

    def loss(self, batch: ImageBatch) -> dict[str, Tensor]:
        """The RoI head's losses (``loss_cls``, ``loss_bbox``, ...) on the samples' proposals."""
        feats = self.extract_feat(batch.images)
        return self.roi_head.loss(feats, self.proposals_of(batch.samples), batch.samples)

    def predict(self, batch: ImageBatch) -> list[Instances]:
        """One Instances per image in original image coordinates (masks pasted at
        ``ori_shape`` when the RoI head has a mask head)."""
        feats = self.extract_feat(batch.images)
        results = self.roi_head.predict(feats, self.proposals_of(batch.samples), batch.samples)
        return self.postprocess(results, batch.samples)

    postprocess_masks = TwoStageDetector.postprocess_masks
