"""The COCOeval implementations detbox can score with, and running one of them.

``numpy`` (the default) scores boxes (``bbox`` and class-agnostic ``proposal``) column-wise in
NumPy (``coco_numpy``) and leaves pycocotools' precision and recall arrays bit for bit; masks
have no NumPy path, so for ``segm`` it hands over to ``faster-coco-eval``, which matches and
accumulates in C++ and gives pycocotools' numbers to the last bit of the 12 summary values.
``pycocotools`` is the reference implementation, kept as a choice and used by the parity
tests. All leave a precision array (T, R, K, A, M) and a recall array (T, K, A, M) in
pycocotools' layout, which is all that ``coco_summary`` and the per-class table read.
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
from detbox.evaluation.coco_detections import detection_annotations
from detbox.evaluation.coco_numpy import evaluate_boxes
from detbox.evaluation.detection_columns import BoxColumns
from detbox.evaluation.results_file import check_results

__all__ = [
    "BACKENDS",
    "DEFAULT_BACKEND",
    "Accumulated",
    "check_backend",
    "resolve_backend",
    "run_cocoeval",
]

logger = logging.getLogger(__name__)

BACKENDS = ("numpy", "faster-coco-eval", "pycocotools")
DEFAULT_BACKEND = "numpy"


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


def resolve_backend(name: str | None, coco_type: str = "bbox") -> str:
    """The implementation that scores ``coco_type`` for ``name`` (the default for None).

    ``numpy`` scores masks with faster-coco-eval; faster-coco-eval falls back to pycocotools
    when it is not installed.
    """
    name = check_backend(name)
    if name == "numpy" and coco_type == "segm":
        name = "faster-coco-eval"
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
    results: list[dict[str, Any]],
    coco_type: str,
    *,
    img_ids: Sequence[int],
    cat_ids: Sequence[int],
    max_dets: Sequence[int],
    use_cats: bool,
    backend: str | None = None,
    columns: BoxColumns | None = None,
) -> Accumulated:
    """Match ``results`` to ``coco_gt`` and accumulate precision and recall.

    Args:
        coco_gt: the ground truth.
        results: COCO result dicts (not modified).
        coco_type: ``"bbox"`` or ``"segm"``.
        img_ids: images to evaluate.
        cat_ids: categories to evaluate (ignored for matching when ``use_cats`` is False).
        max_dets: the detection limits.
        use_cats: match within a category; False pools all categories (proposal recall).
        backend: one of :data:`BACKENDS`; the default when None.
        columns: ``results`` already read as box columns (``results_file.check_results``);
            read here when None and the NumPy backend needs them.

    Returns:
        The accumulated arrays with the parameters that index them.

    Raises:
        ResultsError: the NumPy backend found a result it cannot score (naming it).
    """
    backend = resolve_backend(backend, coco_type)
    if backend == "numpy":
        return _run_numpy(coco_gt, results, columns, img_ids=img_ids, cat_ids=cat_ids,
                          max_dets=max_dets, use_cats=use_cats)
    detections = detection_annotations(results, coco_type)
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


def _run_numpy(
    coco_gt: COCO, results: list[dict[str, Any]], columns: BoxColumns | None, **settings: Any
) -> Accumulated:
    if columns is None:
        columns = check_results(results, coco_gt, "bbox" if settings["use_cats"] else "proposal")
    precision, recall, params = evaluate_boxes(coco_gt, columns, **settings)
    return Accumulated(precision=precision, recall=recall, backend="numpy", **params)


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
