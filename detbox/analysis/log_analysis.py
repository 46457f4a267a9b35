"""Reading the trainer's JSON-lines logs: training curves and training-time statistics.

A log (``work_dir/<timestamp>.log.jsonl``) holds one record per logged training step,
``{"mode": "train", "epoch", "iter", "step", "lr", "time", "data_time", "loss", ...}``, and one
per evaluation, ``{"mode": "val", "epoch", "bbox_mAP", ...}`` (with its ``step`` too when
training counts iterations or runs against a time budget). Training keys are plotted against
the global iteration (``step``), evaluation keys against the epoch, or against the iteration
when every evaluation record has its ``step``.
"""

from __future__ import annotations

import difflib
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from detbox.errors import DetboxError

__all__ = [
    "Curve",
    "TrainTimeStats",
    "collect_curves",
    "load_log",
    "plot_curves",
    "train_time_stats",
]


@dataclass
class Curve:
    """One series of one log: ``y[i]`` of ``key`` at ``x[i]`` (iterations or epochs)."""

    label: str
    key: str
    x: list[float]
    y: list[float]
    x_label: str


@dataclass
class TrainTimeStats:
    """Seconds per iteration of one run, from the ``time`` of its training records.

    Attributes:
        epoch_means: mean seconds per iteration of each epoch.
        slowest_epoch, fastest_epoch: the epochs with the highest and lowest mean.
        std: standard deviation of the per-epoch means (over epochs).
        mean: mean seconds per iteration over all records used.
        data_mean: mean ``data_time`` over the same records (NaN when not logged).
        num_records: training records used.
    """

    epoch_means: dict[int, float]
    slowest_epoch: int
    fastest_epoch: int
    std: float
    mean: float
    data_mean: float
    num_records: int


def load_log(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The records of a JSON-lines log, in file order.

    A last line cut short (a run killed while writing) is skipped; a damaged line elsewhere is
    an error naming its line number.
    """
    path = Path(path)
    if not path.is_file():
        raise DetboxError(f"log file not found: {path}")
    lines = path.read_text(encoding="utf-8").splitlines()
    records = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            if number == len(lines):
                break
            raise DetboxError(f"{path}:{number} is not a JSON record ({exc.msg})") from exc
        if isinstance(record, dict):
            records.append(record)
    if not records:
        raise DetboxError(f"{path} holds no log records (expected a detbox .log.jsonl file)")
    return records


def _as_float(value: Any) -> float:
    return math.nan if value is None else float(value)


def _train_x(record: dict[str, Any], iters_per_epoch: int) -> float:
    if "step" in record:
        return float(record["step"])
    return float((int(record["epoch"]) - 1) * iters_per_epoch + int(record["iter"]))


def _series(records: list[dict[str, Any]], key: str) -> tuple[list[float], list[float], str]:
    """(x, y, x label) of ``key``: train keys per iteration, val keys per epoch (per iteration
    in logs of iteration-based training)."""
    train = [r for r in records if r.get("mode") == "train" and key in r]
    val = [r for r in records if r.get("mode") == "val" and key in r]
    if train:
        iters_per_epoch = max(int(r.get("iter", 0)) for r in train)
        return ([_train_x(r, iters_per_epoch) for r in train],
                [_as_float(r[key]) for r in train], "iteration")
    if val and all("step" in r for r in val):
        return [float(r["step"]) for r in val], [_as_float(r[key]) for r in val], "iteration"
    return [float(r["epoch"]) for r in val], [_as_float(r[key]) for r in val], "epoch"


def _numeric_keys(records: list[dict[str, Any]]) -> list[str]:
    skip = {"mode", "epoch", "iter", "step"}
    keys = {k for r in records for k, v in r.items()
            if k not in skip and isinstance(v, (int, float)) and not isinstance(v, bool)}
    return sorted(keys)


def collect_curves(
    logs: Sequence[str | os.PathLike], keys: Sequence[str], legend: Sequence[str] | None = None
) -> dict[str, list[Curve]]:
    """The series of every key in every log.

    Args:
        logs: JSON-lines log files, one run each.
        keys: record keys to extract (``loss_cls``, ``bbox_mAP``, ...).
        legend: one label per log; the log file names by default.

    Returns:
        ``{key: [Curve per log]}`` in the order given.

    Raises:
        DetboxError: a key no record of a log has (the message lists the keys it has), or a
            legend of the wrong length.
    """
    if legend is not None and len(legend) != len(logs):
        raise DetboxError(f"--legend needs one label per log: {len(logs)} logs, "
                          f"{len(legend)} labels")
    labels = list(legend) if legend is not None else [Path(p).name for p in logs]
    curves: dict[str, list[Curve]] = {key: [] for key in keys}
    for path, label in zip(logs, labels):
        records = load_log(path)
        available = _numeric_keys(records)
        for key in keys:
            if key not in available:
                close = difflib.get_close_matches(key, available, n=1)
                hint = f"; did you mean '{close[0]}'?" if close else ""
                raise DetboxError(f"{path} has no '{key}'{hint} Its keys: {', '.join(available)}")
            x, y, x_label = _series(records, key)
            curves[key].append(Curve(label=label, key=key, x=x, y=y, x_label=x_label))
    return curves


def plot_curves(
    curves: dict[str, list[Curve]], out_file: str | os.PathLike, title: str | None = None
) -> Path:
    """One subplot per key, one line per log; saved as an image (format from the suffix)."""
    from matplotlib.figure import Figure  # not pyplot: no global backend or figure state

    fig = Figure(figsize=(8, 3 * len(curves)))
    axes = fig.subplots(len(curves), 1, squeeze=False)
    for ax, (key, series) in zip(axes[:, 0], curves.items()):
        for curve in series:
            marker = "o" if curve.x_label == "epoch" else None
            ax.plot(curve.x, curve.y, label=curve.label, marker=marker)
        ax.set_ylabel(key)
        ax.set_xlabel(series[0].x_label if series else "")
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    out_file = Path(out_file)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_file, dpi=100)
    return out_file


def train_time_stats(
    records: list[dict[str, Any]], include_outliers: bool = False
) -> TrainTimeStats:
    """Per-epoch and overall seconds per iteration of a run.

    Args:
        records: the records of one log (:func:`load_log`).
        include_outliers: keep each epoch's first training record, which also times the data
            loader start-up (and, in the first epoch, warm-up); dropped by default when the
            epoch has other records.
    """
    by_epoch: dict[int, list[dict[str, Any]]] = {}
    for record in records:
        if record.get("mode") == "train" and record.get("time") is not None:
            by_epoch.setdefault(int(record["epoch"]), []).append(record)
    if not by_epoch:
        raise DetboxError("the log has no training records with a 'time' value")
    used = [group if include_outliers or len(group) == 1 else group[1:]
            for group in by_epoch.values()]
    epoch_means = {epoch: float(np.mean([r["time"] for r in group]))
                   for epoch, group in zip(by_epoch, used)}
    flat = [r for group in used for r in group]
    data_times = [r["data_time"] for r in flat if r.get("data_time") is not None]
    return TrainTimeStats(
        epoch_means=epoch_means,
        slowest_epoch=max(epoch_means, key=epoch_means.__getitem__),
        fastest_epoch=min(epoch_means, key=epoch_means.__getitem__),
        std=float(np.std(list(epoch_means.values()))),
        mean=float(np.mean([r["time"] for r in flat])),
        data_mean=float(np.mean(data_times)) if data_times else math.nan,
        num_records=len(flat),
    )
