"""COCO results split per task, as the COCO test server takes them.

The evaluation server scores one task per uploaded file: a ``bbox`` file of
``{image_id, category_id, bbox, score}`` and a ``segm`` file whose entries carry a
``segmentation`` RLE (their ``score`` is the one masks are ranked by). A proposal generator's
boxes are scored class-agnostically, so its file gives them all one category id (the
dataset's first). ``detbox test --out PREFIX`` writes ``PREFIX.bbox.json``,
``PREFIX.segm.json`` (mask models) or ``PREFIX.proposal.json`` (RPNs).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from detbox.evaluation.results import write_results

__all__ = ["split_task_results", "task_result_paths", "write_task_results"]


def split_task_results(
    results: Sequence[dict[str, Any]], proposals: bool = False, proposal_cat_id: int = 1
) -> dict[str, list[dict[str, Any]]]:
    """Per-task results lists from detbox's combined ones (``instances_to_coco_results``).

    Args:
        results: COCO result dicts, with ``segmentation`` (and ``mask_score``) for mask models.
        proposals: the results are proposals: one ``proposal`` list, boxes only.
        proposal_cat_id: the category id every proposal gets.

    Returns:
        ``{"proposal": [...]}`` for proposals; else ``{"bbox": [...]}`` plus ``"segm"`` when
        any result has a mask. ``segm`` entries keep ``bbox`` and take ``mask_score`` (when
        given) as their ``score``.
    """
    boxes = [{k: r[k] for k in ("image_id", "category_id", "bbox", "score")} for r in results]
    if proposals:
        return {"proposal": [{**r, "category_id": int(proposal_cat_id)} for r in boxes]}
    split: dict[str, list[dict[str, Any]]] = {"bbox": boxes}
    if any("segmentation" in r for r in results):
        split["segm"] = [
            {"image_id": r["image_id"], "category_id": r["category_id"], "bbox": r["bbox"],
             "score": r.get("mask_score", r["score"]), "segmentation": r["segmentation"]}
            for r in results if "segmentation" in r
        ]
    return split


def task_result_paths(prefix: str | os.PathLike, tasks: Sequence[str]) -> dict[str, Path]:
    """``{task: PREFIX.task.json}``."""
    prefix = os.fspath(prefix)
    return {task: Path(f"{prefix}.{task}.json") for task in tasks}


def write_task_results(
    prefix: str | os.PathLike, results: Sequence[dict[str, Any]], proposals: bool = False,
    proposal_cat_id: int = 1,
) -> dict[str, Path]:
    """Write one results file per task (see :func:`split_task_results`), each whole or not at
    all; returns ``{task: path}``. The folder of ``prefix`` is created when missing."""
    split = split_task_results(results, proposals=proposals, proposal_cat_id=proposal_cat_id)
    paths = task_result_paths(prefix, list(split))
    for task, path in paths.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        write_results(path, split[task])
    return paths
