"""Training logs: a human-readable text file, a JSON-lines file and the console.

Each run writes ``work_dir/<timestamp>.log`` (what a person reads) and
``work_dir/<timestamp>.log.jsonl`` (what scripts and plots read: one record per logged training
step and one per evaluation). Messages from any ``detbox.*`` logger reach the same file, so data
or model warnings raised during training end up next to the losses. With ``tensorboard=True``
the same records also go to TensorBoard event files. Only rank 0 writes; other ranks stay silent
apart from warnings.
"""

from __future__ import annotations

import datetime
import json
import logging
import math
import os
import platform
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

import detbox
from detbox.engine.dist import is_main_process
from detbox.engine.tensorboard import TensorBoardWriter

__all__ = [
    "TrainLogger",
    "WindowMeter",
    "describe_environment",
    "describe_run",
    "format_eta",
    "format_train_line",
    "plain_metric",
]

_FORMAT = "%(asctime)s %(levelname)s %(message)s"
_DATE_FORMAT = "%Y-%m-%d %H:%M:%S"
# Keys written first, in this order; the remaining keys follow as they come.
_LEADING_KEYS = ("mode", "epoch", "iter", "step", "lr", "eta_seconds", "time", "data_time")


class _TqdmHandler(logging.StreamHandler):
    """Console output that does not tear an active progress bar apart."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            tqdm.write(self.format(record), file=self.stream)
        except Exception:  # noqa: BLE001 -- logging must never stop training
            self.handleError(record)


class WindowMeter:
    """Averages of scalar values over the iterations since the last log line.

    Each key is averaged over the updates that carried it, so a value measured only on some
    iterations (the gradient norm, once per accumulated step) is not diluted.
    """

    def __init__(self) -> None:
        self._sums: dict[str, float] = {}
        self._counts: dict[str, int] = {}

    def update(self, values: Mapping[str, float]) -> None:
        for key, value in values.items():
            self._sums[key] = self._sums.get(key, 0.0) + float(value)
            self._counts[key] = self._counts.get(key, 0) + 1

    def average(self) -> dict[str, float]:
        return {k: v / self._counts[k] for k, v in self._sums.items()}

    def reset(self) -> None:
        self._sums.clear()
        self._counts.clear()


def plain_metric(value: Any) -> Any:
    """A one-element tensor or numpy number as a Python float; anything else unchanged."""
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return float(value)
    if isinstance(value, (np.ndarray, np.generic)) and value.size == 1:
        return float(value)
    return value


def _finite_or_null(value: Any) -> Any:
    """NaN and inf as null, so every line is strict JSON (``jq`` and browsers reject NaN)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {k: _finite_or_null(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite_or_null(v) for v in value]
    return value


def _to_json(value: Any) -> Any:
    """JSON stand-ins for tensors and numpy values inside metrics."""
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def format_eta(seconds: float) -> str:
    """``0:12:03`` style; ``-`` before the speed is known."""
    if not math.isfinite(seconds):
        return "-"
    return str(datetime.timedelta(seconds=round(seconds)))


def _format_value(value: float) -> str:
    return f"{value:.4f}" if math.isfinite(value) else str(value)


def format_train_line(record: Mapping[str, Any], max_epochs: int | None, iters_per_epoch: int,
                      max_iters: int | None = None) -> str:
    """``epoch [1/12] iter [50/500] lr 1.0e-02 eta 0:12:03 time 0.41 data 0.01 loss 1.2345 ...``

    With ``max_iters`` (iteration-based training) the position is ``iter [50/90000] epoch
    [1]`` (the global iteration first); with ``max_epochs`` None, ``epoch [1]``."""
    of = f"/{max_epochs}" if max_epochs else ""
    epoch = f"epoch [{record['epoch']}{of}]"
    position = [epoch, f"iter [{record['iter']}/{iters_per_epoch}]"]
    if max_iters is not None:
        position = [f"iter [{record['step']}/{max_iters}]", epoch]
    parts = [
        *position,
        f"lr {record['lr']:.1e}",
        f"eta {format_eta(record.get('eta_seconds', math.nan))}",
        f"time {record['time']:.2f}",
        f"data {record['data_time']:.2f}",
    ]
    for key, value in record.items():
        if key in _LEADING_KEYS:
            continue
        if key == "memory_mb":
            parts.append(f"memory {int(value)}")
        elif isinstance(value, (int, float)):
            parts.append(f"{key} {_format_value(float(value))}")
    return " ".join(parts)


def describe_environment(
    model: nn.Module, device: torch.device, seed: int, deterministic: bool
) -> list[str]:
    """The lines that open every log: seed, device, library versions, parameter counts."""
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    try:
        import torchvision

        vision = f", torchvision {torchvision.__version__}"
    except ImportError:
        vision = ""
    cuda = (f", CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}"
            if torch.cuda.is_available() else "")
    where = (torch.cuda.get_device_name(device) if device.type == "cuda"
             else f"{torch.get_num_threads()} threads")
    return [
        f"seed {seed} (deterministic: {deterministic})",
        f"device {device} ({where})",
        (f"detbox {detbox.__version__}, Python {platform.python_version()}, torch "
         f"{torch.__version__}{vision}{cuda}, numpy {np.__version__}"),
        f"model {type(model).__name__}: {total:,} parameters ({trainable:,} trainable)",
    ]


def describe_run(
    *,
    model: nn.Module,
    device: torch.device,
    seed: int,
    deterministic: bool,
    max_epochs: int,
    iters_per_epoch: int,
    batches_per_epoch: int,
    batch_per_process: int | None,
    accumulate_steps: int,
    world_size: int,
    optimizer_name: str,
    work_dir: str | os.PathLike,
    notes: list[str | None],
    length: str | None = None,
) -> list[str]:
    """The lines that open a training log: environment, schedule, batch sizes and ``notes``
    (None entries are left out). ``length`` replaces the words about the length of training
    (default: ``training {max_epochs} epochs x ...``)."""
    lines = describe_environment(model, device, seed, deterministic)
    steps = f"{world_size} process(es) x {accumulate_steps} accumulation step(s)"
    batch = (f"total batch {batch_per_process * world_size * accumulate_steps} = "
             f"{batch_per_process} per process x {steps}" if batch_per_process else steps)
    length = length or (f"training {max_epochs} epochs x {iters_per_epoch} iterations "
                        f"({batches_per_epoch} batches per epoch)")
    lines.append(
        f"{length}, {batch}, optimizer "
        f"{optimizer_name}, world size {world_size}, work_dir {work_dir}"
    )
    if world_size > 1:
        lines.append(f"rank r seeds its generators with {seed} + r")
    return lines + [note for note in notes if note]


class TrainLogger:
    """Writes the text log, the JSON-lines log and the console output of one run.

    One run logs at a time in a process: opening a logger closes one left open.

    Args:
        work_dir: where the two log files go.
        enabled: write files and info messages (rank 0); other ranks pass False.
        progress_bar: show a tqdm bar per epoch; None shows it when stderr is a terminal.
        timestamp: the files' base name; defaults to the current local time.
        tensorboard: also write TensorBoard events to ``work_dir/tensorboard/<timestamp>``.
    """

    # The logger open in this process: the ``detbox`` logger's handlers belong to one run.
    _active: TrainLogger | None = None

    def __init__(
        self,
        work_dir: str | os.PathLike,
        *,
        enabled: bool | None = None,
        progress_bar: bool | None = None,
        timestamp: str | None = None,
        tensorboard: bool = False,
    ) -> None:
        if TrainLogger._active is not None:  # a run that ended without close()
            TrainLogger._active.close()
        TrainLogger._active = self
        self.enabled = is_main_process() if enabled is None else enabled
        self.show_progress = (sys.stderr.isatty() if progress_bar is None else progress_bar)
        self.show_progress = self.show_progress and self.enabled
        self.logger = logging.getLogger("detbox")
        self._handlers: list[logging.Handler] = []
        self._jsonl = None
        self.text_path: Path | None = None
        self.jsonl_path: Path | None = None
        self.tensorboard: TensorBoardWriter | None = None
        if self.enabled:
            self._open_files(Path(work_dir), timestamp or time.strftime("%Y%m%d_%H%M%S"))
            if tensorboard:
                self.tensorboard = TensorBoardWriter(Path(work_dir) / "tensorboard" /
                                                     self.text_path.stem)
        self._saved_level = self.logger.level
        self._saved_propagate = self.logger.propagate
        self.logger.setLevel(logging.INFO if self.enabled else logging.WARNING)
        self.logger.propagate = False

    def _open_files(self, work_dir: Path, timestamp: str) -> None:
        work_dir.mkdir(parents=True, exist_ok=True)
        name, suffix = timestamp, 1
        while (work_dir / f"{name}.log").exists():  # two runs started within one second
            name, suffix = f"{timestamp}_{suffix}", suffix + 1
        self.text_path = work_dir / f"{name}.log"
        self.jsonl_path = work_dir / f"{name}.log.jsonl"
        formatter = logging.Formatter(_FORMAT, _DATE_FORMAT)
        file_handler = logging.FileHandler(self.text_path, encoding="utf-8")
        console = _TqdmHandler(sys.stdout)
        for handler in (file_handler, console):
            handler.setFormatter(formatter)
            self.logger.addHandler(handler)
            self._handlers.append(handler)
        self._jsonl = open(self.jsonl_path, "a", encoding="utf-8")  # noqa: SIM115

    def info(self, message: str) -> None:
        self.logger.info(message)

    def warning(self, message: str) -> None:
        self.logger.warning(message)

    def error(self, message: str) -> None:
        self.logger.error(message)

    def _write_record(self, record: Mapping[str, Any]) -> None:
        if self._jsonl is None:
            return
        self._jsonl.write(json.dumps(_finite_or_null(record), default=_to_json) + "\n")
        self._jsonl.flush()

    def log_train(self, record: Mapping[str, Any], max_epochs: int | None, iters_per_epoch: int,
                  max_iters: int | None = None) -> None:
        """One training step: a JSON record (``mode='train'``) and a text line (see
        :func:`format_train_line`)."""
        if not self.enabled:
            return
        ordered: dict[str, Any] = {"mode": "train"}
        ordered.update({key: record[key] for key in _LEADING_KEYS if key in record})
        ordered.update({k: v for k, v in record.items() if k not in ordered})
        self._write_record(ordered)
        self.info(format_train_line(ordered, max_epochs, iters_per_epoch, max_iters))
        if self.tensorboard is not None:
            self.tensorboard.add_scalars("train", ordered, int(ordered.get("step", 0)))

    def log_val(self, epoch: int, metrics: Mapping[str, Any], step: int | None = None,
                by_epoch: bool = True) -> None:
        """One evaluation: a JSON record (``mode='val'``) with every metric, and a text line
        with the scalar ones (per-class tables and lists stay in the JSON). TensorBoard
        plots the scalars at ``step`` (the global iteration; default ``epoch``). Without
        ``by_epoch`` (iteration-based training or a time budget) the record also holds the
        ``step`` and the text line names it."""
        if not self.enabled:
            return
        position = {} if by_epoch or step is None else {"step": step}
        self._write_record({"mode": "val", "epoch": epoch, **position, **metrics})
        if self.tensorboard is not None:
            self.tensorboard.add_scalars("val", metrics, epoch if step is None else step)
            self.tensorboard.flush()
        shown = " ".join(
            f"{k} {_format_value(float(v))}" for k, v in metrics.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool)
        )
        where = f"epoch [{epoch}]" if not position else f"iter [{step}] epoch [{epoch}]"
        self.info(f"val {where} {shown}")

    def log_images(self, images: list[tuple[str, Any]], step: int) -> None:
        """Pictures of predictions (``(name, (H, W, 3) uint8)``) for TensorBoard, if on."""
        if self.enabled and self.tensorboard is not None and images:
            self.tensorboard.add_images("val_images", images, step)

    def progress(self, total: int, description: str) -> tqdm | None:
        """A progress bar for ``total`` iterations, or None when bars are off."""
        if not self.show_progress:
            return None
        return tqdm(total=total, desc=description, dynamic_ncols=True, leave=False, file=sys.stderr)

    def close(self) -> None:
        """Close the files and give the ``detbox`` logger back its previous settings."""
        if TrainLogger._active is not self:
            return
        TrainLogger._active = None
        for handler in self._handlers:
            self.logger.removeHandler(handler)
            handler.close()
        self._handlers.clear()
        if self._jsonl is not None:
            self._jsonl.close()
            self._jsonl = None
        if self.tensorboard is not None:
            self.tensorboard.close()
            self.tensorboard = None
        self.logger.setLevel(self._saved_level)
        self.logger.propagate = self._saved_propagate
