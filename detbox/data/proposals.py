"""Pre-computed proposals on disk: what ``detbox test --out-proposals`` writes and
``LoadProposals`` reads (Fast R-CNN trains and tests on them).

The file is a ``torch.save`` of plain tensors, strings and lists, read back with
``torch.load(weights_only=True)`` so that loading it runs no pickled code::

    {"format": "detbox-proposals", "version": 1,
     "file_names": [str, ...],          # the dataset's file_name of each image
     "boxes": [(N_i, 4) float32, ...],  # xyxy in original image pixels, best first
     "scores": [(N_i,) float32, ...]}
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import torch
from torch import Tensor

from detbox.errors import DatasetError
from detbox.utils.io import atomic_torch_save

__all__ = ["PROPOSALS_FORMAT", "load_proposals", "save_proposals"]

PROPOSALS_FORMAT = "detbox-proposals"
_VERSION = 1


def save_proposals(path: str | Path, entries: Iterable[tuple[str, Tensor, Tensor]]) -> int:
    """Write ``(file_name, boxes (N, 4), scores (N,))`` per image; returns the image count."""
    file_names, boxes, scores = [], [], []
    for file_name, image_boxes, image_scores in entries:
        file_names.append(str(file_name))
        boxes.append(image_boxes.detach().to("cpu", torch.float32).reshape(-1, 4).contiguous())
        scores.append(image_scores.detach().to("cpu", torch.float32).reshape(-1).contiguous())
    if len(set(file_names)) != len(file_names):
        raise DatasetError(f"{path}: two images share a file_name; proposals are keyed by it")
    atomic_torch_save({"format": PROPOSALS_FORMAT, "version": _VERSION,
                       "file_names": file_names, "boxes": boxes, "scores": scores}, path)
    return len(file_names)


def load_proposals(path: str | Path) -> dict[str, tuple[Tensor, Tensor]]:
    """``{file_name: (boxes (N, 4), scores (N,))}`` from a file :func:`save_proposals` wrote."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"proposals file not found: {path} (write one with `detbox test "
                           "RPN_CONFIG CHECKPOINT --out-proposals FILE`)")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the same user error
        raise DatasetError(f"{path}: not a detbox proposals file ({exc})") from exc
    if not isinstance(data, dict) or data.get("format") != PROPOSALS_FORMAT:
        raise DatasetError(f"{path}: not a detbox proposals file (no format "
                           f"'{PROPOSALS_FORMAT}')")
    if data.get("version") != _VERSION:
        raise DatasetError(f"{path}: proposals file version {data.get('version')} is not "
                           f"supported (expected {_VERSION})")
    names, boxes, scores = data["file_names"], data["boxes"], data["scores"]
    if not len(names) == len(boxes) == len(scores):
        raise DatasetError(f"{path}: file_names, boxes and scores differ in length")
    return {name: (b.reshape(-1, 4), s.reshape(-1)) for name, b, s in zip(names, boxes, scores)}
