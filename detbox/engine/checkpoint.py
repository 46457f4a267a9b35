"""Checkpoints: atomic writes, weights-only loading, format versions and rotation.

Partial weight loading (``--load-from``) lives in :mod:`detbox.engine.checkpoint_fit` and is
re-exported here.

A checkpoint holds only tensors and plain Python values, so it always loads with
``torch.load(..., weights_only=True)``: opening a downloaded file never runs its code. The
config and other metadata travel as a JSON string under ``'meta'``.

Layout of a training checkpoint::

    {'state_dict': model weights, 'optimizer': ..., 'scheduler': ..., 'epoch': completed epochs,
     'iteration': completed iterations, 'meta': JSON text, 'rng': [per-rank RNG states],
     'detbox_version': str, 'torch_version': str, 'format_version': int}

``meta`` holds the config the run was trained with (``meta['config']``) and the label map.
``format_version`` (:data:`FORMAT_VERSION`) grows when the layout changes incompatibly; an
older detbox refuses a newer format in one line instead of misreading it.

plus the trainer's extra entries: ``'epoch_batches'`` (the position within the epoch of a
checkpoint written mid-epoch), ``'amp'`` (the fp16 loss scaler and its skipped-step count),
``'best'`` (the history of the ``save_best`` metric), under ``train_cfg.max_time``
``'time_budget'`` (the seconds spent) and, with an ``ema`` section, ``'ema'``: then
``'state_dict'`` holds the moving average of the weights (what inference loads) and ``'ema'``
is ``{'training_state_dict': the trained weights, 'steps': updates so far}``. Regular
checkpoints are ``epoch_N.pth`` after N epochs, or ``iter_N.pth`` after N iterations
(iteration-based training, a time budget's end mid-epoch, an interruption).
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

import detbox
from detbox.config import config_to_jsonable
from detbox.engine.checkpoint_fit import LoadReport, load_weights
from detbox.engine.dist import unwrap_model
from detbox.engine.seed import get_rng_state
from detbox.errors import CheckpointError
from detbox.utils.io import atomic_torch_save, atomic_write

__all__ = [
    "FORMAT_VERSION",
    "LATEST_NAME",
    "LoadReport",
    "checkpoint_name",
    "extract_state_dict",
    "find_latest",
    "link_or_copy",
    "load_checkpoint",
    "load_weights",
    "remove_old_checkpoints",
    "resume_candidates",
    "save_checkpoint",
    "update_latest",
    "write_checkpoint",
]

LATEST_NAME = "latest.pth"
FORMAT_VERSION = 1
_NUMBERED_FILE = re.compile(r"^(epoch|iter)_(\d+)\.pth$")
# Exact types: subclasses such as torch's TorchVersion (a str) are refused by weights_only.
_PLAIN_TYPES = (str, int, float, bool, type(None), torch.Size, torch.dtype)
_WRITER_KEYS = ("meta", "detbox_version", "torch_version", "format_version")


def _check_loadable(obj: Any, where: str) -> None:
    """Raise CheckpointError naming the first value weights-only loading would refuse."""
    if isinstance(obj, Mapping):
        for key, value in obj.items():
            if not isinstance(key, (str, int)):
                raise CheckpointError(f"checkpoint key {key!r} under '{where}' is not a str or int")
            _check_loadable(value, f"{where}.{key}")
    elif isinstance(obj, (list, tuple)):
        for index, value in enumerate(obj):
            _check_loadable(value, f"{where}[{index}]")
    elif not isinstance(obj, torch.Tensor) and type(obj) not in _PLAIN_TYPES:
        raise CheckpointError(
            f"checkpoint value at '{where}' is a {type(obj).__name__}, which "
            "torch.load(weights_only=True) cannot read; store it in 'meta' (JSON) instead"
        )


def save_checkpoint(
    path: str | os.PathLike,
    *,
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any = None,
    epoch: int = 0,
    iteration: int = 0,
    meta: Mapping[str, Any] | None = None,
    rng_state: list[dict[str, Any]] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write a checkpoint atomically: the previous file at ``path`` survives any failure.

    Args:
        path: destination, usually ``work_dir/epoch_N.pth``.
        model: its ``state_dict`` is saved without DDP's ``module.`` prefix.
        optimizer: saved when given.
        scheduler: anything with ``state_dict()``; saved when given.
        epoch: completed epochs.
        iteration: completed iterations.
        meta: JSON-able metadata (config, class names, label to category id map); it is
            stored as JSON text, so dict keys come back as strings and tuples as lists.
        rng_state: one :func:`~detbox.engine.seed.get_rng_state` per rank; defaults to this
            process's state.
        extra: more top-level entries (tensors and plain values), e.g. the loss scaler.

    Returns:
        The path written.
    """
    entries: dict[str, Any] = {
        "state_dict": unwrap_model(model).state_dict(),
        "epoch": int(epoch),
        "iteration": int(iteration),
        "rng": rng_state if rng_state is not None else [get_rng_state()],
    }
    if optimizer is not None:
        entries["optimizer"] = optimizer.state_dict()
    if scheduler is not None:
        entries["scheduler"] = scheduler.state_dict()
    for key, value in (extra or {}).items():
        if key in entries or key in _WRITER_KEYS:
            raise CheckpointError(f"extra checkpoint entry '{key}' would replace a standard one")
        entries[key] = value
    return write_checkpoint(path, entries, meta=meta)


def write_checkpoint(path: str | os.PathLike, entries: Mapping[str, Any], *,
                     meta: Mapping[str, Any] | None = None) -> Path:
    """Write prepared entries (tensors and plain values) atomically, with ``'meta'`` as JSON
    text and the detbox and torch versions added.

    Args:
        path: destination.
        entries: the checkpoint's other top-level entries, e.g.
            :meth:`detbox.engine.training_state.TrainingState.state_dict`.
        meta: JSON-able metadata.

    Returns:
        The path written.

    Raises:
        CheckpointError: an entry would replace ``meta`` or a version, a value
            ``torch.load(weights_only=True)`` could not read back, or the disk is full (the
            file at ``path`` is left as it was and no temporary file remains).
    """
    for key in _WRITER_KEYS:
        if key in entries:
            raise CheckpointError(f"checkpoint entry '{key}' is written by write_checkpoint")
    checkpoint = {
        **entries,
        "meta": json.dumps(config_to_jsonable(dict(meta or {}))),
        "detbox_version": detbox.__version__,
        "torch_version": str(torch.__version__),
        "format_version": FORMAT_VERSION,
    }
    _check_loadable(checkpoint, "checkpoint")
    try:
        atomic_torch_save(checkpoint, path)
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        raise CheckpointError(
            f"no space left on the device writing checkpoint {path} ({os.strerror(exc.errno)}); "
            "the partial file was removed and the previous checkpoints are intact: free some "
            "space (or lower checkpoint.max_keep) and continue with --resume"
        ) from exc
    return Path(path)


def load_checkpoint(
    path: str | os.PathLike, map_location: str | torch.device | None = "cpu"
) -> dict[str, Any]:
    """Load a checkpoint with ``weights_only=True``; ``'meta'`` comes back decoded to a dict.

    A ``.safetensors`` file (``detbox publish --safetensors``) loads as ``{'state_dict',
    'meta', ...}`` as well, so it works wherever a checkpoint does.

    Raises:
        CheckpointError: the file is missing, truncated, not a torch file, or holds Python
            objects that weights-only loading refuses.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    if path.suffix == ".safetensors":
        return _load_safetensors(path, map_location)
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises many types for damaged files
        reason = _reason(exc)
        if "weights only" in str(exc).lower() or "weightsunpickler" in str(exc).lower():
            raise CheckpointError(
                f"{path} holds Python objects that safe loading refuses ({reason}). If you "
                "trust its source, keep only its weights: torch.save(torch.load(path, "
                "weights_only=False)['state_dict'], new_path)"
            ) from exc
        raise CheckpointError(
            f"cannot read checkpoint {path}: it is truncated or not a PyTorch file ({reason})"
        ) from exc
    if not isinstance(checkpoint, dict):
        raise CheckpointError(f"{path} holds a {type(checkpoint).__name__}, not a checkpoint dict")
    _check_format(checkpoint, path)
    if isinstance(checkpoint.get("meta"), str):
        try:
            checkpoint["meta"] = json.loads(checkpoint["meta"])
        except json.JSONDecodeError as exc:
            raise CheckpointError(f"{path}: its 'meta' is not valid JSON ({exc})") from exc
    return checkpoint


def _check_format(checkpoint: Mapping[str, Any], path: Path) -> None:
    """Refuse a checkpoint written in a newer format than this detbox reads."""
    version = checkpoint.get("format_version", 1)
    if isinstance(version, int) and version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path} has checkpoint format {version}, written by detbox "
            f"{checkpoint.get('detbox_version', '(unknown)')}; this detbox "
            f"({detbox.__version__}) reads formats up to {FORMAT_VERSION}: upgrade detbox "
            "(pip install -U detbox)"
        )


def _load_safetensors(path: Path, map_location: str | torch.device | None) -> dict[str, Any]:
    """A published ``.safetensors`` file as ``{'state_dict', 'meta', ...}``; detbox's JSON meta
    travels in the header metadata under ``'detbox_meta'``."""
    try:
        from safetensors import safe_open
    except ImportError as exc:
        raise CheckpointError(
            f"{path} is a safetensors file; install safetensors (pip install 'detbox[tools]')"
        ) from exc
    device = str(map_location) if map_location is not None else "cpu"
    try:
        with safe_open(str(path), framework="pt", device=device) as f:
            metadata = dict(f.metadata() or {})
            state = {key: f.get_tensor(key) for key in f.keys()}
    except Exception as exc:  # safetensors raises its own error types for damaged files
        raise CheckpointError(f"cannot read safetensors file {path} ({_reason(exc)})") from exc
    try:
        meta = json.loads(metadata.pop("detbox_meta", "{}"))
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path}: its 'detbox_meta' is not valid JSON ({exc})") from exc
    return {"state_dict": state, "meta": meta, **metadata}


def _reason(exc: Exception) -> str:
    """The informative line of a torch.load error (its first lines are generic advice)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    for line in lines:
        if "WeightsUnpickler error" in line:
            return line.split("WeightsUnpickler error:", 1)[1].split(". Please use")[0].strip()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__


def extract_state_dict(checkpoint: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """The model weights of a detbox checkpoint, ``{'model': ...}`` or a bare state_dict.

    A ``module.`` prefix left by saving a DDP-wrapped model elsewhere is removed.
    """
    for key in ("state_dict", "model"):
        if isinstance(checkpoint.get(key), Mapping):
            state = checkpoint[key]
            break
    else:
        state = checkpoint
    tensors = {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise CheckpointError(
            "the checkpoint holds no model weights: expected a state_dict, or one under "
            f"'state_dict' or 'model'; top-level keys: {sorted(map(str, checkpoint))[:10]}"
        )
    if all(k.startswith("module.") for k in tensors):
        tensors = {k[len("module."):]: v for k, v in tensors.items()}
    return tensors


def checkpoint_name(count: int, unit: str = "epoch") -> str:
    """``epoch_N.pth`` after N epochs, or ``iter_N.pth`` (``unit='iter'``) after N iterations."""
    return f"{unit}_{count}.pth"


def update_latest(work_dir: str | os.PathLike, target: str | os.PathLike) -> Path:
    """Atomically point ``work_dir/latest.pth`` at ``target``.

    ``latest.pth`` is a hard link to the target when the filesystem allows (no extra disk
    space, and it stays valid after rotation deletes the target), else a copy. Either way it
    is a complete checkpoint that ``torch.load`` reads directly.
    """
    return link_or_copy(target, Path(work_dir) / LATEST_NAME)


def link_or_copy(target: str | os.PathLike, dest: str | os.PathLike) -> Path:
    """Atomically make ``dest`` hold ``target``'s content: a hard link where the filesystem
    allows (no extra space; it survives deleting ``target``), else a copy."""
    target, dest = Path(target), Path(dest)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.link")
    try:
        if tmp.exists():
            tmp.unlink()
        os.link(target, tmp)
        os.replace(tmp, dest)
    except OSError:
        if tmp.exists():
            tmp.unlink()
        with open(target, "rb") as source:
            atomic_write(dest, lambda f: shutil.copyfileobj(source, f))
    return dest


def _numbered_files(work_dir: Path, unit: str = "epoch") -> list[tuple[int, Path]]:
    """The ``<unit>_N.pth`` files of ``work_dir`` as ``(N, path)``, lowest N first."""
    found = []
    for path in work_dir.glob(f"{unit}_*.pth"):
        match = _NUMBERED_FILE.match(path.name)
        if match and match.group(1) == unit and path.is_file():
            found.append((int(match.group(2)), path))
    return sorted(found)


def remove_old_checkpoints(work_dir: str | os.PathLike, keep: int | None,
                           unit: str = "epoch") -> list[Path]:
    """Delete all but the ``keep`` highest ``epoch_N.pth`` files, or ``iter_N.pth`` files with
    ``unit='iter'`` (None or <= 0 keeps all).

    Returns:
        The deleted paths.
    """
    if not keep or keep <= 0:
        return []
    files = _numbered_files(Path(work_dir), unit)
    removed = [path for _, path in files[:-keep]]
    for path in removed:
        path.unlink(missing_ok=True)
    return removed


def find_latest(work_dir: str | os.PathLike) -> Path | None:
    """The checkpoint ``--resume auto`` continues from: ``latest.pth``, else the highest
    ``epoch_N.pth``, else the highest ``iter_N.pth``, else None."""
    work_dir = Path(work_dir)
    latest = work_dir / LATEST_NAME
    if latest.is_file():
        return latest
    files = _numbered_files(work_dir) if work_dir.is_dir() else []
    files = files or (_numbered_files(work_dir, "iter") if work_dir.is_dir() else [])
    return files[-1][1] if files else None


def resume_candidates(work_dir: str | os.PathLike) -> list[Path]:
    """The checkpoints ``--resume auto`` tries, best first: ``latest.pth``, then the
    ``epoch_N.pth`` files from the newest, then the ``iter_N.pth`` files (iteration-based
    training) from the newest (a truncated ``latest.pth``, e.g. after a full disk, falls back
    to them)."""
    work_dir = Path(work_dir)
    if not work_dir.is_dir():
        return []
    latest = work_dir / LATEST_NAME
    found = [latest] if latest.is_file() else []
    for unit in ("epoch", "iter"):
        found += [path for _, path in reversed(_numbered_files(work_dir, unit))]
    return found
