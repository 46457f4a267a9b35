"""The COCOeval implementations detbox can score with, and running one of them.

``faster-coco-eval`` (the default) matches and accumulates in C++ and gives pycocotools' numbers
to the last bit of the 12 summary values, several times faster and in less memory;
``pycocotools`` is the reference implementation, kept as a choice and used by the parity tests.
Both read the same ground-truth and detection ``COCO`` objects and leave a precision array
(T, R, K, A, M) and a recall array (T, K, A, M) in pycocotools' layout, which is all that
``coco_summary`` and the per-class table read.
"""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from pycocotools.coco import COCO

from detbox.errors import ConfigError

__all__ = [
    "BACKENDS",
    "DEFAULT_BACKEND",
    "Accumulated",
    "check_backend",
    "resolve_backend",
    "run_cocoeval",
]

logger = logging.getLogger(__name__)

BACKENDS = ("faster-coco-eval", "pycocotools")
DEFAULT_BACKEND = "faster-coco-eval"


@dataclass(frozen=True)
class Accumulated:
    """What one COCOeval run leaves for the summary and the per-class table.

    Attributes:
        precision: (T, R, K, A, M) interpolated precision, ``-1`` where there is no ground truth;
            T IoU thresholds, R recall points, K categories, A area ranges, M ``maxDets``.
        recall: (T, K, A, M) recall, ``-1`` where there is no ground truth.
        iou_thrs: (T,) IoU thresholds.
        area_labels: names of the A area ranges (``"all"``, ``"small"``, ...).
        max_dets: the M detection limits, ascending.
        cat_ids: the category id of each of the K columns (``[-1]`` when class-agnostic).
        img_ids: the images evaluated.
        backend: the implementation that produced the arrays.
    """

    precision: np.ndarray
    recall: np.ndarray
    iou_thrs: np.ndarray
    area_labels: tuple[str, ...]
    max_dets: tuple[int, ...]
    cat_ids: tuple[int, ...]
    img_ids: tuple[int, ...]
    backend: str


def check_backend(name: str | None) -> str:
    """The backend ``name`` stands for (the default for None).

    Raises:
        ConfigError: ``name`` is not one of :data:`BACKENDS`.
    """
    if name is None:
        return DEFAULT_BACKEND
    if name not in BACKENDS:
        raise ConfigError(
            f"unknown COCO evaluation backend {name!r}; choose one of: {', '.join(BACKENDS)}"
        )
    return name


def resolve_backend(name: str | None) -> str:
    """Like :func:`check_backend`, falling back to pycocotools when faster-coco-eval is missing."""
    name = check_backend(name)
    if name == "faster-coco-eval":
        try:
            import faster_coco_eval  # noqa: F401
        except ImportError:
            logger.warning(
                "faster-coco-eval is not installed; evaluating with pycocotools (slower)"
            )
            return "pycocotools"
    return name


def run_cocoeval(
    coco_gt: COCO,
    detections: list[dict[str, Any]],
    coco_type: str,
    *,
    img_ids: Sequence[int],
    cat_ids: Sequence[int],
    max_dets: Sequence[int],
    use_cats: bool,
    backend: str | None = None,
) -> Accumulated:
    """Match ``detections`` to ``coco_gt`` and accumulate precision and recall.

    Args:
        coco_gt: the ground truth.
        detections: detection annotations (``coco_detections.detection_annotations``), each
            with ``id``, ``area``, ``iscrowd`` and ``score``.
        coco_type: ``"bbox"`` or ``"segm"``.
        img_ids: images to evaluate.
        cat_ids: categories to evaluate (ignored for matching when ``use_cats`` is False).
        max_dets: the detection limits.
        use_cats: match within a category; False pools all categories (proposal recall).
        backend: one of :data:`BACKENDS`; the default when None.

    Returns:
        The accumulated arrays with the parameters that index them.
    """
    backend = resolve_backend(backend)
    if backend == "faster-coco-eval":
        import faster_coco_eval

        coco_eval = faster_coco_eval.COCOeval_faster(
            _indexed(faster_coco_eval.COCO, coco_gt.dataset),
            _indexed(faster_coco_eval.COCO, _detections_dataset(coco_gt, detections)),
            coco_type,
            print_function=_silent,
        )
    else:
        from pycocotools.cocoeval import COCOeval

        coco_eval = COCOeval(
            coco_gt, _indexed(COCO, _detections_dataset(coco_gt, detections)), coco_type
        )
    params = coco_eval.params
    params.imgIds = sorted(set(img_ids))
    params.catIds = list(cat_ids)
    params.maxDets = [int(m) for m in max_dets]
    params.useCats = int(use_cats)
    with contextlib.redirect_stdout(io.StringIO()):
        coco_eval.evaluate()
        coco_eval.accumulate()
    params = coco_eval.params
    return Accumulated(
        precision=coco_eval.eval["precision"],
        recall=coco_eval.eval["recall"],
        iou_thrs=np.asarray(params.iouThrs),
        area_labels=tuple(params.areaRngLbl),
        max_dets=tuple(int(m) for m in params.maxDets),
        cat_ids=tuple(int(c) for c in params.catIds) if use_cats else (-1,),
        img_ids=tuple(int(i) for i in params.imgIds),
        backend=backend,
    )


def _detections_dataset(coco_gt: COCO, detections: list[dict[str, Any]]) -> dict[str, Any]:
    """The detections as a COCO dataset over the ground truth's images and categories."""
    return {
        "images": coco_gt.dataset["images"],
        "categories": coco_gt.dataset["categories"],
        "annotations": detections,
    }


def _indexed(coco_class: type, dataset: dict[str, Any]) -> Any:
    """A ``coco_class`` object over ``dataset`` (shared, not copied), index built quietly."""
    coco = coco_class()
    coco.dataset = dataset
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def _silent(*_args, **_kwargs) -> None:
    """faster-coco-eval's progress messages, dropped (it logs them by default)."""
