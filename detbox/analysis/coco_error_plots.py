"""Stacked-area plots of the COCO error analysis (``coco_errors``), one per category and one
for all categories, per area range: the area between two curves is what one error costs."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from detbox.analysis.coco_errors import CURVE_HELP, CURVES, ErrorAnalysis

__all__ = ["plot_error_curves", "save_error_plots"]

# From the best curve (FN, back) to the strictest (C75, front).
_COLOURS = {"C75": "#aec7e8", "C50": "#1f77b4", "Loc": "#2ca02c", "Sim": "#d62728",
            "Oth": "#9467bd", "BG": "#ff7f0e", "FN": "#8c564b"}


def plot_error_curves(curves: np.ndarray, rec_thrs: np.ndarray, title: str,
                      out_file: str | os.PathLike) -> Path:
    """Draw the (7, R) curves of one category (or overall) as stacked areas with each
    curve's AP in the legend; returns the PNG path."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 4.8))
    ax = fig.add_subplot()
    lower = np.zeros_like(rec_thrs, dtype=np.float64)
    for name, curve in zip(CURVES, curves):
        ax.fill_between(rec_thrs, lower, curve, color=_COLOURS[name], linewidth=0,
                        label=f"[{curve.mean():.3f}] {name}")
        lower = np.maximum(lower, curve)
    for curve in curves:
        ax.plot(rec_thrs, curve, color="black", linewidth=0.6)
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="recall", ylabel="precision", title=title)
    handles, labels = ax.get_legend_handles_labels()
    ax.legend(handles[::-1], labels[::-1], loc="lower left", fontsize=8, framealpha=0.9)
    out_file = Path(out_file)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(out_file, dpi=100)
    return out_file


def save_error_plots(analysis: ErrorAnalysis, out_dir: str | os.PathLike,
                     areas: Sequence[str] = ("all",)) -> list[Path]:
    """``out_dir/<area>/overall.png`` and ``out_dir/<area>/<category>.png`` for each area;
    a category without ground truth of an area gets no plot there."""
    written = []
    for area in areas:
        a = analysis.area_labels.index(area)
        folder = Path(out_dir) / area
        written.append(plot_error_curves(analysis.curve(None, area), analysis.rec_thrs,
                                         f"overall-{area}", folder / "overall.png"))
        for k, name in enumerate(analysis.cat_names):
            if analysis.precision[0, 0, k, a] < 0:
                continue
            written.append(plot_error_curves(analysis.curve(k, area), analysis.rec_thrs,
                                             f"{name}-{area}", folder / f"{_file_name(name)}.png"))
    return written


def _file_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "category"


def legend_lines() -> list[str]:
    """One line per curve: its name and what it forgives, for reports."""
    return [f"{name:>4}: {CURVE_HELP[name]}" for name in CURVES]
