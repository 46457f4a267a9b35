"""COCO evaluation (pycocotools underneath), results files, prediction records and readable
reports."""

from detbox.evaluation.coco_metric import CocoMetric
from detbox.evaluation.coco_scoring import (
    ClassAP,
    CocoEvalResult,
    check_gt_supports,
    evaluate_coco,
    load_coco_gt,
)
from detbox.evaluation.prediction_records import prediction_record, records_to_coco_results
from detbox.evaluation.report import format_class_table, format_report
from detbox.evaluation.results import (
    ResultsError,
    check_results,
    instances_to_coco_results,
    load_results,
    masks_to_rles,
    write_results,
)
from detbox.evaluation.voc_metric import VOCMetric

__all__ = [
    "ClassAP",
    "CocoEvalResult",
    "CocoMetric",
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
    "write_results",
]
