"""COCO evaluation (NumPy, faster-coco-eval or pycocotools underneath), results files, prediction
records and readable reports.

The names below load their module on first use, so that scoring a results file
(``coco_scoring``, ``results_file``, ``report``) never imports torch, which the modules working
on ``Instances`` need.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_HOMES = {
    "CocoMetric": "coco_metric",
    "ClassAP": "coco_scoring",
    "CocoEvalResult": "coco_scoring",
    "check_gt_supports": "coco_scoring",
    "evaluate_coco": "coco_scoring",
    "load_coco_gt": "coco_scoring",
    "prediction_record": "prediction_records",
    "records_to_coco_results": "prediction_records",
    "format_class_table": "report",
    "format_report": "report",
    "ResultsError": "results_file",
    "check_results": "results_file",
    "load_results": "results_file",
    "instances_to_coco_results": "results",
    "masks_to_rles": "results",
    "write_results": "results",
    "VOCMetric": "voc_metric",
    "RecallMetric": "recall",
    "split_task_results": "task_results",
    "write_task_results": "task_results",
}

__all__ = [
    "ClassAP",
    "CocoEvalResult",
    "CocoMetric",
    "RecallMetric",
    "ResultsError",
    "VOCMetric",
    "check_gt_supports",
    "check_results",
    "evaluate_coco",
    "format_class_table",
    "format_report",
    "instances_to_coco_results",
    "load_coco_gt",
    "load_results",
    "masks_to_rles",
    "prediction_record",
    "records_to_coco_results",
    "split_task_results",
    "write_results",
    "write_task_results",
]

if TYPE_CHECKING:
    from detbox.evaluation.coco_metric import CocoMetric
    from detbox.evaluation.coco_scoring import (
        ClassAP,
        CocoEvalResult,
        check_gt_supports,
        evaluate_coco,
        load_coco_gt,
    )
    from detbox.evaluation.prediction_records import prediction_record, records_to_coco_results
    from detbox.evaluation.recall import RecallMetric
    from detbox.evaluation.report import format_class_table, format_report
    from detbox.evaluation.results import instances_to_coco_results, masks_to_rles, write_results
    from detbox.evaluation.results_file import ResultsError, check_results, load_results
    from detbox.evaluation.task_results import split_task_results, write_task_results
    from detbox.evaluation.voc_metric import VOCMetric


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'detbox.evaluation' has no attribute '{name}'")
    value = getattr(importlib.import_module(f"detbox.evaluation.{_HOMES[name]}"), name)
    globals()[name] = value
    return value
