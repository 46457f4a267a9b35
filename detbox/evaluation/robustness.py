"""The robustness benchmark's figures: mPC and rPC (Michaelis et al., 2019).

A result set maps corruption -> severity -> eval type -> the 12 COCO stats (``STAT_NAMES``),
with the clean numbers (severity 0) kept once, apart::

    {"clean": {"bbox": {...}}, "corruptions": {"fog": {"1": {"bbox": {...}}, ...}}}

- **mPC** (mean performance under corruption): the AP averaged over every corruption and
  severity 1-5 evaluated;
- **rPC** (relative performance under corruption): mPC / clean AP.

Plain Python (no torch), so the arithmetic is testable on a hand-made result set.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["STAT_NAMES", "named_stats", "robustness_summary", "format_robustness"]

#: pycocotools' 12 summary numbers, in its order.
STAT_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl",
              "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")

Results = Mapping[str, Any]


def named_stats(stats: Sequence[float]) -> dict[str, float]:
    """pycocotools' 12 stats (a list) -> ``{"AP": ..., "AP50": ..., ..., "ARl": ...}``."""
    if len(stats) != len(STAT_NAMES):
        raise ValueError(f"expected {len(STAT_NAMES)} COCO stats, got {len(stats)}")
    return {name: float(value) for name, value in zip(STAT_NAMES, stats)}


def _corrupted_values(results: Results, eval_type: str, stat: str) -> list[float]:
    return [float(by_type[eval_type][stat])
            for by_severity in results.get("corruptions", {}).values()
            for severity, by_type in by_severity.items()
            if 1 <= int(severity) <= 5 and eval_type in by_type]


def robustness_summary(results: Results, eval_type: str = "bbox",
                       stat: str = "AP") -> dict[str, float | None]:
    """Clean AP, mPC and rPC of one eval type.

    Args:
        results: a result set (see the module docstring).
        eval_type: ``bbox`` or ``segm``.
        stat: the figure averaged, one of ``STAT_NAMES`` (the benchmark uses ``AP``).

    Returns:
        ``{"clean": ..., "mPC": ..., "rPC": ...}``; ``clean`` is None without a severity-0
        evaluation, ``mPC`` None without a corrupted one, and ``rPC`` None when either is
        missing or the clean AP is 0.
    """
    clean_stats = results.get("clean", {}).get(eval_type)
    clean = float(clean_stats[stat]) if clean_stats else None
    values = _corrupted_values(results, eval_type, stat)
    mpc = math.fsum(values) / len(values) if values else None
    rpc = mpc / clean if mpc is not None and clean else None
    return {"clean": clean, "mPC": mpc, "rPC": rpc}


def _cell(value: float | None, width: int) -> str:
    return f"{'-' if value is None else f'{value:.3f}':>{width}}"


def format_robustness(results: Results, eval_type: str = "bbox") -> str:
    """A table of AP per corruption (rows) and severity (columns), then mPC and rPC.

    Severity 0 is the clean AP, the same on every row; a row's last column is its mean over
    severities 1-5.
    """
    corruptions = results.get("corruptions", {})
    severities = sorted({int(s) for by_severity in corruptions.values() for s in by_severity})
    summary = robustness_summary(results, eval_type)
    show_clean = summary["clean"] is not None
    columns = ([0] if show_clean else []) + severities
    name_width = max([len(name) for name in corruptions] + [len("corruption")])
    lines = [f"{eval_type} AP under corruption",
             f"{'corruption':<{name_width}}" + "".join(f"{f'sev {s}':>8}" for s in columns)
             + f"{'mean':>8}"]
    for name, by_severity in corruptions.items():
        values = {int(s): by_type.get(eval_type, {}).get("AP") for s, by_type in
                  by_severity.items()}
        corrupted = [v for s, v in values.items() if s >= 1 and v is not None]
        row_mean = math.fsum(corrupted) / len(corrupted) if corrupted else None
        cells = [summary["clean"] if s == 0 else values.get(s) for s in columns]
        lines.append(f"{name:<{name_width}}" + "".join(_cell(v, 8) for v in cells)
                     + _cell(row_mean, 8))
    clean, mpc, rpc = summary["clean"], summary["mPC"], summary["rPC"]
    lines.append(f"clean AP: {'-' if clean is None else f'{clean:.3f}'}   "
                 f"mPC: {'-' if mpc is None else f'{mpc:.3f}'}   "
                 f"rPC: {'-' if rpc is None else f'{rpc:.1%}'}")
    return "\n".join(lines)
