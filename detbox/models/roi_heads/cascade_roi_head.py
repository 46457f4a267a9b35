"""The RoI head of Cascade (Mask) R-CNN (Cai & Vasconcelos, 2018): box stages trained at rising
IoU thresholds, each on the previous stage's refined boxes."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from detbox.errors import ConfigError
from detbox.models.roi_heads.box_branch import BoxBranch, BoxOutputs
from detbox.models.roi_heads.mask_branch import MaskBranch
from detbox.models.roi_heads.roi_extractor import boxes_to_rois
from detbox.models.roi_heads.standard_roi_head import (
    DEFAULT_BBOX_EXTRACTOR,
    DEFAULT_MASK_EXTRACTOR,
    DEFAULT_RCNN_ASSIGNER,
    DEFAULT_RCNN_SAMPLER,
)
from detbox.registry import MODELS, TASK_UTILS, nested_path
from detbox.structures import DetSample, Instances

__all__ = [
    "DEFAULT_STAGE_IOU_THRS",
    "DEFAULT_STAGE_LOSS_WEIGHTS",
    "DEFAULT_STAGE_TARGET_STDS",
    "CascadeRoIHead",
    "build_stage_modules",
    "check_stage_lengths",
    "cascade_box_predict",
    "stage_losses",
]

DEFAULT_STAGE_IOU_THRS = (0.5, 0.6, 0.7)
DEFAULT_STAGE_LOSS_WEIGHTS = (1.0, 0.5, 0.25)
# Each stage's regression targets shrink as its proposals improve; these stds keep them at
# about unit variance, as in the paper.
DEFAULT_STAGE_TARGET_STDS = (
    (0.1, 0.1, 0.2, 0.2), (0.05, 0.05, 0.1, 0.1), (0.033, 0.033, 0.067, 0.067))

ConfigLike = Mapping[str, Any] | nn.Module


def check_stage_lengths(num_stages: int, **per_stage: Sequence[Any]) -> None:
    """ConfigError unless ``num_stages >= 1`` and every per-stage setting has enough entries."""
    if num_stages < 1:
        raise ConfigError(f"a cascade needs num_stages >= 1, got {num_stages}")
    for name, values in per_stage.items():
        if len(values) < num_stages:
            raise ConfigError(f"{name} has {len(values)} entries for num_stages={num_stages}; "
                              f"give one per stage")


def build_stage_modules(
    cfg: ConfigLike | Sequence[ConfigLike], num_stages: int, name: str,
    adjust: Callable[[dict, int], dict] | None = None, registry: Any = MODELS,
) -> list[Any]:
    """One component per stage, from one config repeated or a list of ``num_stages`` configs.

    Args:
        cfg: a config (or built module) used for every stage, or one per stage.
        num_stages: stages of the cascade.
        name: the argument's name, for errors.
        adjust: ``adjust(config_copy, stage) -> config``: stage-specific settings (built
            modules are used as they are).
        registry: where the type names live.
    """
    if isinstance(cfg, Sequence) and not isinstance(cfg, (str, Mapping)):
        if len(cfg) != num_stages:
            raise ConfigError(f"{name} lists {len(cfg)} configs for num_stages={num_stages}")
        cfgs = list(cfg)
    else:
        cfgs = [cfg] * num_stages
    built = []
    for stage, item in enumerate(cfgs):
        if isinstance(item, Mapping):
            path = nested_path(item)
            item = adjust(dict(item), stage) if adjust is not None else item
            built.append(registry.build(item, path=path))
        else:
            built.append(item)
    return built


def stage_losses(losses: Mapping[str, Tensor], stage: int, weight: float) -> dict[str, Tensor]:
    """``loss_cls`` -> ``loss_s<stage>_cls``, scaled by the stage's weight."""
    return {f"loss_s{stage}_{key.removeprefix('loss_')}": value * weight
            for key, value in losses.items()}


def cascade_box_predict(
    stages: Sequence[BoxBranch], feats: Sequence[Tensor], proposals: Sequence[Instances],
    img_shapes: Sequence[Sequence[int]],
) -> tuple[list[Instances], list[BoxOutputs]]:
    """Run the proposals through every stage and keep the last stage's boxes.

    Each stage refines its input RoIs by the deltas of its best foreground class; the final
    score of a RoI is the mean of the stages' softmax probabilities (the paper's ensemble),
    its boxes the last stage's regression of the last stage's input.

    Returns:
        Per image, the detections in ``img_shape`` coordinates (thresholded and NMS-ed by the
        last stage's box head), and each stage's outputs.
    """
    rois = boxes_to_rois([p.boxes for p in proposals])
    outputs, probs = [], []
    for i, stage in enumerate(stages):
        out = stage.outputs(feats, rois)
        outputs.append(out)
        probs.append(F.softmax(out.cls_score.float(), dim=-1))
        if i < len(stages) - 1:
            labels = probs[-1][:, :stage.num_classes].argmax(dim=1)
            refined = stage.refine(out.rois, labels, out.bbox_pred, img_shapes)
            rois = boxes_to_rois([r.boxes for r in refined])
    scores = torch.stack(probs).mean(dim=0)
    last = outputs[-1]
    dets = stages[-1].bbox_head.predict_by_scores(scores, last.bbox_pred, last.rois, img_shapes)
    return dets, outputs


@MODELS.register
class CascadeRoIHead(nn.Module):
    """Box stages at rising IoU (``BoxBranch`` es), optionally with a mask head per stage.

    ``num_stages`` box stages and, for Cascade Mask R-CNN, a mask head per stage
    (``MaskBranch`` es).

    Training: stage ``t`` assigns its proposals at IoU ``stage_iou_thrs[t]`` (the GT boxes
    added), samples, and trains its box head with its own target stds; the sampled RoIs,
    refined by its deltas and without the GT boxes, are the proposals of stage ``t + 1``. Each
    stage's mask head trains on that stage's positives. Stage ``t``'s losses are weighted by
    ``stage_loss_weights[t]`` and named ``loss_s<t>_cls``, ``loss_s<t>_bbox``, ``loss_s<t>_mask``.

    Inference: see :func:`cascade_box_predict` (scores averaged over the stages, boxes of the
    last stage); masks come from the last stage's mask head.

    Checkpoint keys: ``bbox_heads.<t>.*``, ``mask_heads.<t>.*``. ``bbox_head`` and
    ``mask_head`` read as the last stage's (its ``score_thr``, ``mask_thr`` are final).

    Args:
        bbox_head: ``MODELS`` config of a box head, repeated for every stage, or a list of one
            per stage. Unless a config sets them, a stage's head is class-agnostic
            (``class_agnostic=True``) and its ``box_coder`` uses ``stage_target_stds[t]``.
        num_stages: box stages.
        stage_loss_weights: weight of each stage's losses.
        stage_iou_thrs: IoU at which each stage's proposals are positive (and below which they
            are background).
        stage_target_stds: each stage's ``DeltaXYWHBoxCoder`` target stds.
        bbox_roi_extractor: ``MODELS`` config of the box RoI pooler, shared by the stages.
        mask_head: ``MODELS`` config of a mask head (repeated, or one per stage), or None.
        mask_roi_extractor: ``MODELS`` config of the mask RoI pooler, shared by the stages.
        assigner: ``TASK_UTILS`` config of the proposal assigner; its ``pos_iou_thr``,
            ``neg_iou_thr`` and ``min_pos_iou`` are set to each stage's IoU threshold.
        sampler: ``TASK_UTILS`` config of the RoI sampler, shared by the stages.
    """

    def __init__(
        self,
        *,
        bbox_head: ConfigLike | Sequence[ConfigLike],
        num_stages: int = 3,
        stage_loss_weights: Sequence[float] = DEFAULT_STAGE_LOSS_WEIGHTS,
        stage_iou_thrs: Sequence[float] = DEFAULT_STAGE_IOU_THRS,
        stage_target_stds: Sequence[Sequence[float]] = DEFAULT_STAGE_TARGET_STDS,
        bbox_roi_extractor: ConfigLike = DEFAULT_BBOX_EXTRACTOR,
        mask_head: ConfigLike | Sequence[ConfigLike] | None = None,
        mask_roi_extractor: ConfigLike = DEFAULT_MASK_EXTRACTOR,
        assigner: Mapping[str, Any] | Any = DEFAULT_RCNN_ASSIGNER,
        sampler: Mapping[str, Any] | Any = DEFAULT_RCNN_SAMPLER,
    ) -> None:
        super().__init__()
        check_stage_lengths(num_stages, stage_loss_weights=stage_loss_weights,
                       stage_iou_thrs=stage_iou_thrs, stage_target_stds=stage_target_stds)
        self.num_stages = num_stages
        self.stage_loss_weights = tuple(float(w) for w in stage_loss_weights[:num_stages])
        self.stage_iou_thrs = tuple(float(t) for t in stage_iou_thrs[:num_stages])
        stds = [tuple(float(s) for s in std) for std in stage_target_stds[:num_stages]]

        def head_for_stage(cfg: dict, stage: int) -> dict:
            cfg.setdefault("class_agnostic", True)
            cfg.setdefault("box_coder", {"type": "DeltaXYWHBoxCoder",
                                         "target_stds": stds[stage]})
            return cfg

        def assigner_for_stage(cfg: dict, stage: int) -> dict:
            thr = self.stage_iou_thrs[stage]
            return {**cfg, "pos_iou_thr": thr, "neg_iou_thr": thr, "min_pos_iou": thr}

        self.bbox_roi_extractor = MODELS.build(bbox_roi_extractor)
        self.bbox_heads = nn.ModuleList(
            build_stage_modules(bbox_head, num_stages, "bbox_head", head_for_stage))
        self.with_mask = mask_head is not None
        self.mask_roi_extractor = MODELS.build(mask_roi_extractor) if self.with_mask else None
        self.mask_heads = (nn.ModuleList(build_stage_modules(
            mask_head, num_stages, "mask_head", self._mask_head_for_stage))
                           if self.with_mask else None)
        self.assigners = build_stage_modules(assigner, num_stages, "assigner",
                                             assigner_for_stage, registry=TASK_UTILS)
        self.sampler = TASK_UTILS.build(sampler)

    @property
    def num_classes(self) -> int:
        return self.bbox_heads[-1].num_classes

    @property
    def bbox_head(self) -> nn.Module:
        """The last stage's box head (its ``score_thr``, NMS settings decide the detections)."""
        return self.bbox_heads[-1]

    @property
    def mask_head(self) -> nn.Module | None:
        """The last stage's mask head (the one that predicts), or None."""
        return self.mask_heads[-1] if self.with_mask else None

    @property
    def box_branches(self) -> list[BoxBranch]:
        """The box stages, wired from this head's modules."""
        return [BoxBranch(roi_extractor=self.bbox_roi_extractor, bbox_head=head,
                          assigner=assigner, sampler=self.sampler)
                for head, assigner in zip(self.bbox_heads, self.assigners)]

    @property
    def mask_branches(self) -> list[MaskBranch]:
        """The mask stages (empty without mask heads)."""
        if not self.with_mask:
            return []
        return [MaskBranch(roi_extractor=self.mask_roi_extractor, mask_head=head)
                for head in self.mask_heads]

    def forward(self, feats: Sequence[Tensor], rois: Tensor) -> tuple[Tensor, Tensor]:
        """Raw outputs of every stage in turn (for FLOPs counting): the RoIs (sorted by image)
        are refined, unclipped, between stages. (R, 5) -> the last stage's (R, C + 1) logits
        and (R, 4) deltas (for the last stage's input RoIs, which are not returned)."""
        return self._forward_stages(self.bbox_roi_extractor, feats, rois)

    def _forward_stages(
        self, extract: Callable[[Sequence[Tensor], Tensor], Tensor], feats: Sequence[Tensor],
        rois: Tensor,
    ) -> tuple[Tensor, Tensor]:
        no_clip = [None] * int(feats[0].shape[0])
        for i, head in enumerate(self.bbox_heads):
            cls_score, bbox_pred = head(extract(feats, rois))
            if i < self.num_stages - 1:
                labels = cls_score[:, :head.num_classes].argmax(dim=1)
                rois = boxes_to_rois(head.refine_boxes(rois, labels, bbox_pred, no_clip))
        return cls_score, bbox_pred

    def _mask_head_for_stage(self, cfg: dict, stage: int) -> dict:
        """Stage-specific mask head settings (none here; HTC's stages differ)."""
        return cfg

    def loss(
        self, feats: Sequence[Tensor], proposals: Sequence[Instances],
        samples: Sequence[DetSample],
    ) -> dict[str, Tensor]:
        """``loss_s<t>_cls``, ``loss_s<t>_bbox`` (+ ``loss_s<t>_mask``) for every stage ``t``.

        Args:
            feats: pyramid levels, finest first, (B, C, H_l, W_l) each.
            proposals: per image, Instances with ``boxes`` in ``img_shape`` coordinates.
            samples: per image, its DetSample with GT (``gt.masks`` when training masks).
        """
        gts = [s.gt_or_empty(feats[0].device) for s in samples]
        img_shapes = [s.img_shape for s in samples]
        masks = self.mask_branches
        losses: dict[str, Tensor] = {}
        for t, (box, weight) in enumerate(zip(self.box_branches, self.stage_loss_weights)):
            results = box.sample(proposals, gts, samples)
            box_losses, out = box.loss(feats, results, gts)
            losses.update(stage_losses(box_losses, t, weight))
            if masks:
                losses.update(stage_losses(masks[t].loss(feats, results, gts), t, weight))
            if t < self.num_stages - 1:
                proposals = box.refine_sampled(out, results, img_shapes)
        return losses

    def predict(
        self, feats: Sequence[Tensor], proposals: Sequence[Instances],
        samples: Sequence[DetSample],
    ) -> list[Instances]:
        """Detections per image in ``img_shape`` coordinates: ``boxes``, ``labels``,
        ``scores``; with mask heads also ``masks`` (N, M, M) probabilities of the last
        stage's mask head (pasted into the image by the detector)."""
        dets, _ = cascade_box_predict(self.box_branches, feats, proposals,
                                      [s.img_shape for s in samples])
        if self.with_mask:
            dets = self.mask_branches[-1].predict(feats, dets)
        return dets
