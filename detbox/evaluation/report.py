"""Plain-text reports of COCO results: pycocotools' summary lines and a per-class table.

The summary lines are the ones pycocotools printed, so logs compare line by line with any other
COCO tool. The per-class table is a Markdown pipe table: readable in a terminal, rendered by
GitHub when pasted, and parsed by splitting each row on ``|``.
"""

from __future__ import annotations

from collections.abc import Sequence

from detbox.evaluation.coco_scoring import ClassAP, CocoEvalResult

__all__ = ["NO_GT", "format_class_table", "format_report"]

NO_GT = "n/a (no ground truth)"

def _cell(value: float) -> str:
    return NO_GT if value < 0 else f"{value:.3f}"


def format_class_table(per_class: Sequence[ClassAP]) -> list[str]:
    """A Markdown table ``| class | AP | AP50 | AP75 | #GT |``, one row per category.

    AP is averaged over IoU 0.50:0.95 (area all, top maxDets); a category without ground truth
    has no AP and shows ``n/a (no ground truth)`` instead of pycocotools' ``-1``.
    """
    header = ("class", "AP", "AP50", "AP75", "#GT")
    rows = [
        (c.name, _cell(c.ap), _cell(c.ap50), _cell(c.ap75), str(c.num_gt)) for c in per_class
    ]
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        padded = [cells[0].ljust(widths[0])]
        padded += [c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True)]
        return "| " + " | ".join(padded) + " |"

    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return [line(header), rule, *(line(r) for r in rows)]


def format_report(result: CocoEvalResult, per_class: bool = True) -> str:
    """Heading, summary lines and (for class-aware types) the per-class table of one evaluation."""
    heading = (
        f"COCO {result.iou_type} evaluation: {result.num_images} images, "
        f"{result.num_detections} results"
    )
    lines = [heading, *result.summary_lines]
    if per_class and result.per_class:
        lines += ["", *format_class_table(result.per_class)]
    return "\n".join(lines)
