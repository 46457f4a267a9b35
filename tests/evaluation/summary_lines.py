"""pycocotools' 12 summary lines rebuilt from the numbers, for tests that need a summary
without running an evaluation (and a check that the layout matches pycocotools')."""

from __future__ import annotations

from collections.abc import Sequence

from detbox.evaluation.coco_scoring import DEFAULT_MAX_DETS

__all__ = ["format_summary"]

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
