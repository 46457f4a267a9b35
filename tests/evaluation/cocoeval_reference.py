"""pycocotools run directly (no detbox code), the reference detbox's COCO numbers are checked
against, and the Penn-Fudan val ground truth those checks use."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from tests.conftest import SHARED_DATA

PENNFUDAN_VAL = SHARED_DATA / "pennfudan/annotations/instances_val.json"


def pennfudan_val_or_skip() -> Path:
    """The Penn-Fudan val annotation file; the test is skipped (with the reason) if absent."""
    if not PENNFUDAN_VAL.is_file():
        pytest.skip(f"Penn-Fudan ground truth not found at {PENNFUDAN_VAL} (shared test data)")
    return PENNFUDAN_VAL


def reference_cocoeval(
    gt_path: Path, results: list[dict], iou_type: str, use_cats: bool = True,
    max_dets: tuple[int, int, int] = (1, 10, 100),
) -> tuple[np.ndarray, list[str]]:
    """pycocotools run directly: the 12 stats and the printed summary.

    For segm the boxes are dropped first, as detbox does, so that instance areas come from the
    masks (pycocotools would take them from the boxes otherwise).
    """
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO(str(gt_path))
        if iou_type == "segm":
            results = [{k: v for k, v in r.items() if k != "bbox"} for r in results]
        coco_dt = coco_gt.loadRes([dict(r) for r in results])
        coco_eval = COCOeval(coco_gt, coco_dt, "bbox" if iou_type == "proposal" else iou_type)
        coco_eval.params.useCats = int(use_cats)
        coco_eval.params.maxDets = list(max_dets)
        coco_eval.evaluate()
        coco_eval.accumulate()
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        coco_eval.summarize()
    return coco_eval.stats, printed.getvalue().splitlines()
