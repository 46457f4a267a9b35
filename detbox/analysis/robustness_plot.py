"""The robustness benchmark's plot: AP against severity, one line per corruption."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["plot_robustness"]


def plot_robustness(results: Mapping[str, Any], out_file: str | os.PathLike,
                    eval_types: tuple[str, ...] = ("bbox",)) -> Path:
    """Save AP vs severity (0 = the clean AP, on every line), one panel per eval type.

    Args:
        results: a result set of ``detbox.evaluation.robustness``.
        out_file: the PNG to write.
        eval_types: the panels, left to right.
    """
    from matplotlib import colormaps
    from matplotlib.figure import Figure  # not pyplot: no global backend or figure state

    colours = colormaps["tab20"]  # 20 distinct colours: the 19 corruptions never share one

    fig = Figure(figsize=(6 * len(eval_types), 4.5))
    for index, eval_type in enumerate(eval_types):
        axes = fig.add_subplot(1, len(eval_types), index + 1)
        clean = results.get("clean", {}).get(eval_type, {}).get("AP")
        for line, (name, by_severity) in enumerate(results.get("corruptions", {}).items()):
            points = sorted((int(s), v[eval_type]["AP"]) for s, v in by_severity.items()
                            if eval_type in v)
            if clean is not None:
                points = [(0, clean), *points]
            if points:
                axes.plot(*zip(*points), marker="o", label=name, color=colours(line % 20))
        axes.set_xlabel("severity")
        axes.set_ylabel(f"{eval_type} AP")
        axes.set_xticks(range(6))
        axes.set_title(f"{eval_type} AP under corruption")
        axes.grid(alpha=0.3)
        axes.legend(fontsize="x-small", ncol=2)
    out_file = Path(out_file)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(out_file, dpi=100)
    return out_file
