"""The summary lines and the per-class table as a person and a parser read them."""

from __future__ import annotations

import pytest

from detbox.evaluation.coco_scoring import ClassAP, CocoEvalResult
from detbox.evaluation.report import NO_GT, format_class_table, format_report
from tests.evaluation.summary_lines import format_summary

ROWS = [
    ClassAP("person", 1, ap=0.51234, ap50=0.8, ap75=0.49951, num_gt=77),
    ClassAP("traffic light", 10, ap=-1.0, ap50=-1.0, ap75=-1.0, num_gt=0),
    ClassAP("dog", 18, ap=0.0, ap50=0.0, ap75=0.0, num_gt=3),
]


def _parse(table: list[str]) -> list[list[str]]:
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in table]


def test_class_table_reads_and_parses():
    table = format_class_table(ROWS)
    header, rule, *body = _parse(table)
    assert header == ["class", "AP", "AP50", "AP75", "#GT"]
    assert set(table[1]) == {"|", "-"} and len(rule) == 5
    assert body == [
        ["person", "0.512", "0.800", "0.500", "77"],
        ["traffic light", NO_GT, NO_GT, NO_GT, "0"],
        ["dog", "0.000", "0.000", "0.000", "3"],
    ]
    assert len({len(line) for line in table}) == 1  # columns line up


def test_minus_one_is_never_printed():
    table = "\n".join(format_class_table(ROWS))
    assert "-1" not in table and NO_GT == "n/a (no ground truth)"


def test_summary_wording():
    lines = format_summary([0.5] * 6 + [0.25] * 6)
    assert lines[0] == (
        " Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = 0.500"
    )
    assert lines[1].startswith(" Average Precision  (AP) @[ IoU=0.50      | area=   all |")
    assert lines[6] == (
        " Average Recall     (AR) @[ IoU=0.50:0.95 | area=   all | maxDets=  1 ] = 0.250"
    )
    assert lines[11].endswith("| area= large | maxDets=100 ] = 0.250")
    assert format_summary([-1.0] * 12)[3].endswith("= -1.000")  # pycocotools prints -1 as is
    with pytest.raises(ValueError, match="expected 12 stats"):
        format_summary([0.0] * 10)


def test_report_has_heading_summary_and_table():
    result = CocoEvalResult(
        "segm", [0.1] * 12, (1, 10, 100), format_summary([0.1] * 12), ROWS, 5, 42
    )
    text = format_report(result)
    assert text.splitlines()[0] == "COCO segm evaluation: 5 images, 42 results"
    assert result.summary_lines[0] in text and "| traffic light |" in text
    assert "| class" not in format_report(result, per_class=False)
