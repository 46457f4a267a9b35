"""``detbox configs [PATTERN]``: the shipped recipes with their model, dataset and schedule."""

from __future__ import annotations

import argparse
import fnmatch
from collections.abc import Mapping
from typing import Any


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "configs", help="list the shipped recipes (usable by name in every command that takes "
                        "a config) with their model, dataset and schedule")
    parser.add_argument("pattern", nargs="?", default=None,
                        help="keep recipes whose name contains this text, or matches this glob "
                             "('*r50*coco')")
    parser.set_defaults(func=run)


def matches(name: str, pattern: str | None) -> bool:
    """Whether ``family/stem`` is selected: a substring, or a glob on the name or the stem."""
    if not pattern:
        return True
    pattern = pattern.lower()
    name = name.lower()
    if any(c in pattern for c in "*?["):
        return fnmatch.fnmatch(name, pattern) or fnmatch.fnmatch(name.rsplit("/", 1)[-1], pattern)
    return pattern in name


def _type_name(value: Any) -> str:
    from detbox.config import config_to_jsonable

    return str(config_to_jsonable(value)) if value is not None else "-"


def _dataset_type(node: Any) -> str:
    """The dataset's type, wrappers named around it: ``RepeatDataset(CocoDataset)``."""
    if not isinstance(node, Mapping):
        return "-"
    inner = node.get("dataset") or node.get("datasets")
    outer = _type_name(node.get("type"))
    if isinstance(inner, Mapping):
        return f"{outer}({_dataset_type(inner)})"
    if isinstance(inner, (list, tuple)):
        return f"{outer}({', '.join(_dataset_type(d) for d in inner)})"
    return outer


def summary(cfg: Mapping[str, Any]) -> tuple[str, str, str]:
    """``(model type, training dataset type, schedule)`` of a loaded config."""
    model = _type_name((cfg.get("model") or {}).get("type"))
    dataset = _dataset_type((cfg.get("train_dataloader") or {}).get("dataset"))
    train_cfg = cfg.get("train_cfg") or {}
    if "max_iters" in train_cfg:
        schedule = f"{train_cfg['max_iters']} iters"
    else:
        schedule = f"{train_cfg['max_epochs']} epochs" if "max_epochs" in train_cfg else "-"
    return model, dataset, schedule


def run(args: argparse.Namespace) -> int:
    from detbox.config import load_config
    from detbox.errors import DetboxError
    from detbox.recipes import config_root, recipe_names

    root = config_root()
    names = [n for n in recipe_names(root) if matches(n, args.pattern)]
    if not names:
        raise DetboxError(f"no recipe matches '{args.pattern}' (`detbox configs` lists all)")
    rows = [("NAME", "MODEL", "DATASET", "SCHEDULE")]
    for name in names:
        try:
            rows.append((name, *summary(load_config(name))))
        except DetboxError as exc:
            rows.append((name, f"(cannot load: {exc})", "", ""))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[3])
    print(f"\n{len(names)} recipes in {root}; use a name (or family/name) in place of a config "
          "path, e.g. detbox train NAME")
    return 0
