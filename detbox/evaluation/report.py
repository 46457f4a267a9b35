"""Plain-text reports of COCO results: the 12-line summary and a per-class table.

The summary uses pycocotools' wording and layout, so logs compare line by line with any other
COCO tool. The per-class table is a Markdown pipe table: readable in a terminal, rendered by
GitHub when pasted, and parsed by splitting each row on ``|``.
"""

from __future__ import annotations

from collections.abc import Sequence

from detbox.evaluation.coco_scoring import DEFAULT_MAX_DETS, ClassAP, CocoEvalResult

__all__ = ["NO_GT", "format_class_table", "format_report", "format_summary"]

NO_GT = "n/a (no ground truth)"

# pycocotools' summary order: (average precision?, IoU threshold, area, which maxDets).
# maxDets None is the literal 100 that pycocotools uses for the first line.
_SUMMARY_ROWS = (
    (True, None, "all", None),
    (True, 0.5, "all", 2),
    (True, 0.75, "all", 2),
    (True, None, "small", 2),
    (True, None, "medium", 2),
    (True, None, "large", 2),
    (False, None, "all", 0),
    (False, None, "all", 1),
    (False, None, "all", 2),
    (False, None, "small", 2),
    (False, None, "medium", 2),
    (False, None, "large", 2),
)


def format_summary(
    stats: Sequence[float],
    max_dets: Sequence[int] = DEFAULT_MAX_DETS,
    iou_range: tuple[float, float] = (0.5, 0.95),
) -> list[str]:
    """The 12 summary lines exactly as pycocotools' ``COCOeval.summarize()`` prints them.

    Args:
        stats: the 12 numbers in pycocotools' order.
        max_dets: the three ``maxDets`` of the evaluation.
        iou_range: first and last IoU threshold, shown where a line averages over IoU.
    """
    if len(stats) != len(_SUMMARY_ROWS):
        raise ValueError(f"expected {len(_SUMMARY_ROWS)} stats, got {len(stats)}")
    lines = []
    for value, (is_ap, iou, area, det_index) in zip(stats, _SUMMARY_ROWS, strict=True):
        title, kind = ("Average Precision", "(AP)") if is_ap else ("Average Recall", "(AR)")
        iou_text = f"{iou_range[0]:0.2f}:{iou_range[1]:0.2f}" if iou is None else f"{iou:0.2f}"
        dets = 100 if det_index is None else int(max_dets[det_index])
        lines.append(
            f" {title:<18} {kind} @[ IoU={iou_text:<9} | area={area:>6s} | "
            f"maxDets={dets:>3d} ] = {value:0.3f}"
        )
    return lines


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
