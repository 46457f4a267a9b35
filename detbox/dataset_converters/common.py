"""Pieces shared by the converters: image lookup, category lists and atomic JSON output."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from detbox.errors import DatasetError
from detbox.registry import closest_match
from detbox.utils.io import atomic_write_text

__all__ = [
    "IMAGE_SUFFIXES",
    "categories_of",
    "check_class_name",
    "find_image",
    "list_images",
    "read_class_names",
    "write_coco_json",
]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


def list_images(img_dir: str | os.PathLike) -> list[Path]:
    """Every image below ``img_dir`` (recursively), relative to it, sorted."""
    root = Path(img_dir)
    if not root.is_dir():
        raise DatasetError(f"{root}: image folder not found")
    return sorted(p.relative_to(root) for p in root.rglob("*")
                  if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def find_image(img_dir: str | os.PathLike, stem: str) -> Path | None:
    """``img_dir/<stem><suffix>`` for the first image suffix that exists, else None."""
    for suffix in IMAGE_SUFFIXES:
        for candidate in (suffix, suffix.upper()):
            path = Path(img_dir) / f"{stem}{candidate}"
            if path.is_file():
                return path
    return None


def categories_of(class_names: Sequence[str]) -> list[dict[str, Any]]:
    """COCO categories with ids ``1..C`` in the given order."""
    return [{"id": i + 1, "name": str(name)} for i, name in enumerate(class_names)]


def check_class_name(name: str, class_names: Sequence[str], where: str) -> int:
    """The index of ``name`` in ``class_names``.

    Raises:
        DatasetError: naming ``where`` and the closest known name.
    """
    try:
        return list(class_names).index(name)
    except ValueError:
        match = closest_match(name, list(class_names))
        hint = f" (closest: '{match}')" if match else ""
        raise DatasetError(f"{where}: unknown class '{name}'{hint}; known classes: "
                           f"{', '.join(class_names)}") from None


def read_class_names(path: str | os.PathLike) -> list[str]:
    """Class names from a ``.txt`` file (one per line) or a YOLO ``.yaml`` with ``names``."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: class names file not found")
    if path.suffix.lower() in (".yaml", ".yml"):
        import yaml

        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f) or {}
        names = data.get("names") if isinstance(data, dict) else None
        if isinstance(names, dict):
            names = [names[k] for k in sorted(names, key=int)]
        if not isinstance(names, list):
            raise DatasetError(f"{path}: expected a 'names' list (or {{index: name}} mapping)")
        return [str(n) for n in names]
    names = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    names = [n for n in names if n]
    if not names:
        raise DatasetError(f"{path}: no class names (one per line expected)")
    return names


def write_coco_json(data: dict[str, Any], out: str | os.PathLike) -> Path:
    """Write a COCO dict as JSON, atomically (no half-written file if interrupted)."""
    atomic_write_text(out, json.dumps(data) + "\n")
    return Path(out)
