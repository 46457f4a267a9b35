"""COCO box, mask and proposal metrics over a stream of predictions."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from pycocotools.coco import COCO

from detbox.errors import ConfigError
from detbox.evaluation.coco_backends import check_backend
from detbox.evaluation.coco_scoring import (
    IOU_TYPES,
    CocoEvalResult,
    check_gt_supports,
    evaluate_coco,
    load_coco_gt,
)
from detbox.evaluation.report import format_report
from detbox.evaluation.results import ResultsError, format_id_ranges, instances_to_coco_results
from detbox.structures.instances import DetSample, Instances

__all__ = ["CocoMetric"]

_AP_KEYS = ("mAP", "mAP_50", "mAP_75", "mAP_s", "mAP_m", "mAP_l")


class CocoMetric:
    """Collects predictions image by image, then scores them with COCOeval.

    Predictions are turned into COCO result dicts as they arrive (masks into RLE), so memory stays
    small however long the split is. Only the images seen by :meth:`process` are evaluated, which
    makes a run over part of a split give that part's numbers.

    Args:
        ann_file: COCO ground-truth JSON file.
        coco_gt: the ground truth as a pycocotools ``COCO`` or a COCO-format dict, instead of
            ``ann_file``.
        iou_types: any of ``"bbox"``, ``"segm"`` (masks) and ``"proposal"`` (class-agnostic
            box recall at ``proposal_nums``).
        cat_ids: ``cat_ids[label]`` is the category id of a contiguous label; the ground truth's
            sorted category ids when None. Only these categories are evaluated.
        class_names: names aligned with ``cat_ids``; the ground truth's names when None.
        proposal_nums: the three proposal counts of the ``proposal`` recall.
        classwise: put the per-class AP table into :meth:`evaluate`'s output.
        backend: the COCOeval implementation, ``"numpy"`` (the default when None: boxes in
            NumPy, masks with faster-coco-eval), ``"faster-coco-eval"`` or ``"pycocotools"``
            (``evaluation=dict(backend='pycocotools')`` in a config); all give the same numbers.
    """

    def __init__(
        self,
        ann_file: str | os.PathLike | None = None,
        *,
        coco_gt: COCO | dict[str, Any] | None = None,
        iou_types: Sequence[str] = ("bbox",),
        cat_ids: Sequence[int] | None = None,
        class_names: Sequence[str] | None = None,
        proposal_nums: Sequence[int] = (100, 300, 1000),
        classwise: bool = True,
        backend: str | None = None,
    ) -> None:
        if (ann_file is None) == (coco_gt is None):
            raise ConfigError("CocoMetric needs exactly one of ann_file and coco_gt")
        if isinstance(iou_types, str):
            iou_types = (iou_types,)
        unknown = [t for t in iou_types if t not in IOU_TYPES]
        if unknown or not iou_types:
            raise ConfigError(
                f"CocoMetric iou_types must be some of {', '.join(IOU_TYPES)}, "
                f"got {list(iou_types)}"
            )
        if len(proposal_nums) != 3:
            raise ConfigError(f"proposal_nums must hold three counts, got {list(proposal_nums)}")
        self.backend = check_backend(backend)
        self.coco_gt = load_coco_gt(ann_file if coco_gt is None else coco_gt)
        for iou_type in iou_types:
            check_gt_supports(self.coco_gt, iou_type)
        self.iou_types = tuple(dict.fromkeys(iou_types))
        self.cat_ids = self._check_cat_ids(cat_ids)
        self.class_names = self._check_class_names(class_names)
        self.proposal_nums = tuple(int(n) for n in proposal_nums)
        self.classwise = classwise
        self.results: dict[str, CocoEvalResult] = {}
        self._coco_results: list[dict[str, Any]] = []
        self._image_ids: set[int] = set()

    def _check_cat_ids(self, cat_ids: Sequence[int] | None) -> list[int]:
        valid = sorted(self.coco_gt.getCatIds())
        if cat_ids is None:
            return valid
        cat_ids = [int(c) for c in cat_ids]
        if len(set(cat_ids)) != len(cat_ids):
            raise ConfigError(f"CocoMetric cat_ids has repeated ids: {cat_ids}")
        unknown = [c for c in cat_ids if c not in self.coco_gt.cats]
        if unknown:
            raise ConfigError(
                f"CocoMetric cat_ids {unknown} are not categories of the ground truth; "
                f"valid ids: {format_id_ranges(valid)}"
            )
        return cat_ids

    def _check_class_names(self, class_names: Sequence[str] | None) -> list[str]:
        if class_names is None:
            return [self.coco_gt.cats[c]["name"] for c in self.cat_ids]
        if len(class_names) != len(self.cat_ids):
            raise ConfigError(
                f"CocoMetric got {len(class_names)} class_names for {len(self.cat_ids)} cat_ids"
            )
        return [str(n) for n in class_names]

    def reset(self) -> None:
        """Forget the predictions seen so far."""
        self._coco_results = []
        self._image_ids = set()

    def process(self, samples: Sequence[DetSample], predictions: Sequence[Instances]) -> None:
        """Add one batch of predictions.

        Args:
            samples: the batch's samples; ``sample.image_id`` is the COCO image id.
            predictions: one ``Instances`` per sample in original image coordinates, with
                contiguous ``labels``, ``scores`` and, for ``segm``, binary ``masks`` (N, H, W).
                An image seen twice (e.g. padding of a distributed sampler) counts once.
        """
        if len(samples) != len(predictions):
            raise ValueError(f"{len(samples)} samples but {len(predictions)} predictions")
        with_masks = "segm" in self.iou_types
        for sample, instances in zip(samples, predictions, strict=True):
            image_id = int(sample.image_id)
            if image_id not in self.coco_gt.imgs:
                raise ResultsError(
                    f"image_id {image_id} ({sample.file_name}) is not an image of the ground truth"
                )
            if image_id in self._image_ids:
                continue
            if with_masks and len(instances) and instances.masks is None:
                raise ConfigError(
                    "CocoMetric evaluates 'segm' but the predictions carry no masks; "
                    "use a mask model or drop 'segm' from iou_types"
                )
            self._image_ids.add(image_id)
            self._coco_results += instances_to_coco_results(
                image_id, instances, self.cat_ids, with_masks=with_masks
            )

    def evaluate(self) -> dict[str, Any]:
        """Score everything processed since the last reset, then reset.

        Returns:
            Flat float metrics ``<type>_mAP``, ``_mAP_50``, ``_mAP_75``, ``_mAP_s``, ``_mAP_m``,
            ``_mAP_l`` for ``bbox`` and ``segm``, ``AR@<n>`` and ``AR_s@<n>``/``_m``/``_l`` (largest
            n) for ``proposal``; plus ``<type>_stats`` (pycocotools' 12 numbers, a list) and,
            when ``classwise``, ``<type>_per_class`` (``{name: {"AP", "AP50", "AP75",
            "num_gt", "category_id"}}``; ``-1`` where a class has no ground truth). The full
            results, with the summary lines, stay in ``self.results``; :meth:`report` prints them.
        """
        if not self._image_ids:
            raise RuntimeError("CocoMetric.evaluate() called before process() saw any image")
        metrics: dict[str, Any] = {}
        self.results = {}
        for iou_type in self.iou_types:
            result = evaluate_coco(
                self.coco_gt,
                self._coco_results,
                iou_type,
                img_ids=sorted(self._image_ids),
                cat_ids=self.cat_ids,
                class_names=self.class_names,
                max_dets=self.proposal_nums if iou_type == "proposal" else (1, 10, 100),
                backend=self.backend,
            )
            self.results[iou_type] = result
            metrics.update(self._flatten(result))
        self.reset()
        return metrics

    def _flatten(self, result: CocoEvalResult) -> dict[str, Any]:
        stats = result.stats
        if result.iou_type == "proposal":
            metrics = {f"AR@{n}": stats[6 + i] for i, n in enumerate(self.proposal_nums)}
            largest = self.proposal_nums[-1]
            metrics.update({
                f"AR_{size}@{largest}": stats[9 + i] for i, size in enumerate("sml")
            })
        else:
            metrics = {f"{result.iou_type}_{key}": stats[i] for i, key in enumerate(_AP_KEYS)}
        metrics[f"{result.iou_type}_stats"] = list(stats)
        if self.classwise and result.per_class:
            metrics[f"{result.iou_type}_per_class"] = result.to_dict()["per_class"]
        return metrics

    def report(self) -> str:
        """Summary lines and per-class tables of the last :meth:`evaluate`, for logs."""
        return "\n\n".join(format_report(r, self.classwise) for r in self.results.values())
