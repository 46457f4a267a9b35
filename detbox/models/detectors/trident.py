"""TridentNet (Li et al., ICCV 2019): a C4 Faster R-CNN on a ``TridentResNet``.

The backbone returns every branch as extra batch entries (branch-major, see
``detbox.models.backbones.trident_resnet``); the RPN and the RoI head run on them as on
ordinary images. What the detector adds:

- training: scale-aware samples (branch ``k`` learns only the GT boxes whose ``sqrt(w * h)``
  falls in ``branch_ranges[k]``; the rest are ignored regions for it: anchors and proposals
  lying mostly inside them are neither positives nor background), and the RoI head trains
  only on proposals inside the branch's range;
- testing: with every branch active (``test_branch_idx=-1``) each branch keeps its in-range
  detections and one class-wise NMS merges them per image; with one branch
  (``test_branch_idx=1``, "TridentNet Fast") its detections are the result.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated, Any

from torch import Tensor, nn
from torchvision.ops import batched_nms

from detbox.errors import ConfigError
from detbox.models.detectors.two_stage import TwoStageDetector, _shape_samples
from detbox.models.roi_heads.roi_extractor import boxes_to_rois
from detbox.models.task_modules.scale_ranges import (
    branch_samples,
    check_scale_ranges,
    keep_in_range,
)
from detbox.registry import MODELS
from detbox.structures import ImageBatch, Instances
from detbox.typecheck import Range

__all__ = ["TridentFasterRCNN", "merge_branch_detections"]


def merge_branch_detections(
    dets: Sequence[Instances], num_branches: int, iou_thr: float, max_per_img: int,
) -> list[Instances]:
    """Branch-major per-image detections -> one set per image: class-wise NMS over the union
    of its branches' detections, best ``max_per_img`` kept, sorted by score.

    Args:
        dets: ``num_branches * B`` Instances with ``scores``; entry ``k * B + i`` is branch
            ``k`` of image ``i``.
        num_branches: how many branches ``dets`` holds.
        iou_thr: NMS IoU threshold.
        max_per_img: detections kept per image.
    """
    batch_size = len(dets) // num_branches
    merged = []
    for i in range(batch_size):
        union = Instances.cat([dets[k * batch_size + i] for k in range(num_branches)])
        keep = batched_nms(union.boxes, union.scores, union.labels, iou_thr)[:max_per_img]
        merged.append(union[keep])
    return merged


@MODELS.register
class TridentFasterRCNN(TwoStageDetector):
    """Faster R-CNN C4 with trident branches and scale-aware training.

    Args:
        backbone: ``MODELS`` config of a ``TridentResNet`` (its ``dilations`` set the branches,
            its ``test_branch_idx`` which ones run at test time).
        rpn_head: ``MODELS`` config of the ``RPNHead`` (on C4).
        roi_head: ``MODELS`` config of the ``Res5RoIHead``.
        neck: normally None (C4).
        branch_ranges: one ``(lo, hi)`` range of ``sqrt(w * h)`` per branch, in pixels of the
            resized image; ``hi = -1``: no upper bound. The paper's ``(0, 90), (30, 160),
            (90, -1)`` are for 800 px images.
        scale_aware: train each branch on its range only (the paper's scale-aware training);
            False trains every branch on every object.
        ignore_iof_thr: with ``scale_aware``, anchors and proposals lying more than this
            fraction inside a branch's out-of-range objects (or crowds) are ignored by that
            branch; it is set on the RPN and RoI assigners. Without it a branch would learn
            the objects of the other branches' ranges as background.
        init_cfg: see ``BaseDetector``.
    """

    def __init__(
        self,
        *,
        backbone: Mapping[str, Any] | nn.Module,
        rpn_head: Mapping[str, Any] | nn.Module,
        roi_head: Mapping[str, Any] | nn.Module,
        neck: Mapping[str, Any] | nn.Module | None = None,
        branch_ranges: Sequence[Sequence[float]] = ((0, 90), (30, 160), (90, -1)),
        scale_aware: bool = True,
        ignore_iof_thr: Annotated[float, Range(gt=0, le=1)] = 0.5,
        init_cfg: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(backbone=backbone, rpn_head=rpn_head, roi_head=roi_head, neck=neck,
                         init_cfg=init_cfg)
        if not hasattr(self.backbone, "active_branches"):
            raise ConfigError(f"TridentFasterRCNN needs a TridentResNet backbone, got "
                              f"{type(self.backbone).__name__}")
        self.branch_ranges = check_scale_ranges(branch_ranges, self.backbone.num_branches)
        self.scale_aware = scale_aware
        if scale_aware:
            for name, head in (("rpn_head", self.rpn_head), ("roi_head", self.roi_head)):
                if not hasattr(getattr(head, "assigner", None), "ignore_iof_thr"):
                    raise ConfigError(f"TridentFasterRCNN's scale-aware training needs a {name} "
                                      "whose assigner ignores regions (MaxIoUAssigner); set "
                                      "scale_aware=False for another one")
                head.assigner.ignore_iof_thr = float(ignore_iof_thr)

    def _ranges(self, branches: Sequence[int]) -> list[tuple[float, float]]:
        return [self.branch_ranges[k] if self.scale_aware else (0.0, -1.0) for k in branches]

    def forward(self, images: Tensor) -> dict[str, Any]:
        """Raw outputs as ``TwoStageDetector.forward``, for each active branch of each image
        (branch-major: ``proposals`` has ``N * B`` entries)."""
        feats = self.extract_feat(images)
        samples = _shape_samples(images) * len(self.backbone.active_branches())
        rpn_cls, rpn_deltas = self.rpn_head(feats)
        proposals = self.rpn_head.predict_by_outputs(rpn_cls, rpn_deltas, samples)
        cls_score, bbox_pred = self.roi_head(feats, boxes_to_rois([p.boxes for p in proposals]))
        return {"rpn_cls_logits": rpn_cls, "rpn_box_deltas": rpn_deltas,
                "proposals": [p.boxes for p in proposals], "cls_score": cls_score,
                "bbox_pred": bbox_pred}

    def loss(self, batch: ImageBatch) -> dict[str, Tensor]:
        """RPN and RoI head losses over every branch of every image."""
        feats = self.extract_feat(batch.images)
        ranges = self._ranges(self.backbone.active_branches())
        samples = branch_samples(batch.samples, ranges)
        losses, proposals = self.rpn_head.loss_and_predict(feats, samples)
        proposals = keep_in_range(proposals, ranges, len(batch))
        losses.update(self.roi_head.loss(feats, proposals, samples))
        return losses

    def predict(self, batch: ImageBatch) -> list[Instances]:
        """One Instances per image in original image coordinates, merged over the active
        branches."""
        feats = self.extract_feat(batch.images)
        branches = self.backbone.active_branches()
        samples = list(batch.samples) * len(branches)
        proposals = self.rpn_head.predict(feats, samples)
        dets = self.roi_head.predict(feats, proposals, samples)
        if len(branches) > 1:
            dets = keep_in_range(dets, self._ranges(branches), len(batch))
            head = self.roi_head.bbox_head
            dets = merge_branch_detections(dets, len(branches), head.nms_iou_thr,
                                           head.max_per_img)
        return self.postprocess(dets, batch.samples)
