"""``detbox check-dataset CONFIG|ANNOTATION_FILE``: list every problem of a COCO dataset.

Given a config, every COCO dataset of its train/val/test data loaders is checked (with the
config's ``class_names``); given an annotation file, that file, with its images in ``--img-dir``
(or an ``images`` folder found beside it). Exits 1 when there are errors, 0 with warnings only.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from detbox.errors import DetboxError

SPLITS = ("train_dataloader", "val_dataloader", "test_dataloader")
CONFIG_SUFFIXES = (".py", ".yaml", ".yml")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "check-dataset", help="find every problem of a COCO dataset (annotations and images)")
    parser.add_argument("source", metavar="CONFIG|ANNOTATION_FILE",
                        help="a config (checks its data loaders' datasets) or a COCO JSON file")
    parser.add_argument("--img-dir", help="image folder of an annotation file (default: an "
                        "'images' folder beside or above it, if the images are there)")
    parser.add_argument("--json-out", help="write the full report as JSON to this file")
    parser.add_argument("--max-show", type=int, default=10,
                        help="problems listed per kind (default: 10; --json-out has all)")
    parser.add_argument("--cfg-options", nargs="+", default=[], metavar="KEY=VALUE",
                        help="override config keys, as for train")
    parser.set_defaults(func=run)


def _is_annotation_file(path: Path) -> bool:
    if path.suffix.lower() in CONFIG_SUFFIXES:
        return False
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return True  # the checker reports why it cannot be read
    return not isinstance(data, dict) or bool({"images", "annotations", "categories"} & set(data))


def guess_img_dir(ann_file: Path) -> Path | None:
    """The first of ``../images``, ``images``, ``.`` (from the JSON's folder) holding any of
    the first listed images."""
    try:
        names = [im["file_name"] for im in json.loads(ann_file.read_text())["images"][:5]]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    folder = ann_file.resolve().parent
    for candidate in (folder.parent / "images", folder / "images", folder):
        if candidate.is_dir() and any((candidate / str(n)).is_file() for n in names):
            return candidate
    return None


def _coco_datasets(node: Any) -> list[Mapping[str, Any]]:
    """COCO dataset configs in a data loader's ``dataset`` (wrappers are looked through)."""
    from detbox.data import CocoDataset
    from detbox.registry import DATASETS

    if not isinstance(node, Mapping):
        return []
    kind = node.get("type")
    factory = DATASETS.get(kind) if isinstance(kind, str) and kind in DATASETS else kind
    if isinstance(factory, type) and issubclass(factory, CocoDataset) and "ann_file" in node:
        return [node]
    inner = node.get("dataset") or node.get("datasets") or []
    return [d for item in (inner if isinstance(inner, list) else [inner])
            for d in _coco_datasets(item)]


def config_targets(cfg: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One ``{split, ann_file, img_dir, class_names}`` per distinct COCO dataset of a config."""
    targets: dict[tuple[str, str], dict[str, Any]] = {}
    for split in SPLITS:
        for dataset in _coco_datasets((cfg.get(split) or {}).get("dataset")):
            key = (str(dataset["ann_file"]), str(dataset.get("img_dir")))
            names = dataset.get("class_names") or cfg.get("class_names")
            target = targets.setdefault(key, {"split": [], "ann_file": key[0],
                                              "img_dir": dataset.get("img_dir"),
                                              "class_names": names})
            target["split"].append(split.replace("_dataloader", ""))
    return list(targets.values())


def _targets(args: argparse.Namespace) -> list[dict[str, Any]]:
    source = Path(args.source)
    if not source.is_file() and source.is_absolute():
        raise DetboxError(f"{source}: no such config or annotation file")
    if source.is_file() and _is_annotation_file(source):
        img_dir = Path(args.img_dir) if args.img_dir else guess_img_dir(source)
        guessed = img_dir is not None and not args.img_dir
        return [{"split": [], "ann_file": str(source), "img_dir": img_dir, "guessed": guessed,
                 "class_names": None}]
    from detbox.config import apply_options, load_config, parse_options

    cfg = load_config(source)
    apply_options(cfg, parse_options(args.cfg_options, context=cfg))
    targets = config_targets(cfg)
    if not targets:
        raise DetboxError(f"{source}: no COCO dataset (with ann_file) in its "
                          f"{', '.join(SPLITS)}")
    return targets


def format_report(report, target: Mapping[str, Any], max_show: int = 10) -> str:
    """The console text of one dataset's report."""
    lines = [f"== {report.ann_file}" + (f" [{', '.join(target['split'])}]"
                                        if target.get("split") else "")]
    if report.img_dir is not None:
        lines.append(f"   images: {report.img_dir}" + (" (guessed; --img-dir to choose)"
                                                        if target.get("guessed") else ""))
    lines.append(f"   {report.num_images} images, {report.num_annotations} annotations, "
                 f"{report.images_read} image files read, "
                 f"{len(report.empty_images)} images without annotations")
    if report.class_table:
        width = max(len(row["name"]) for row in report.class_table)
        lines.append(f"   {'id':>6}  {'class':<{width}}  instances  crowd  images")
        lines += [f"   {row['id']!s:>6}  {row['name']:<{width}}  {row['instances']:>9}  "
                  f"{row['crowd']:>5}  {row['images']:>6}" for row in report.class_table]
    codes = report.codes()
    for code in sorted(codes, key=lambda c: [p.severity for p in report.problems
                                             if p.code == c][0] != "error"):
        problems = [p for p in report.problems if p.code == code]
        count = codes[code]
        lines.append(f"   {problems[0].severity.upper()} {code} ({count}): {problems[0].fix}")
        for problem in problems[:max_show]:
            lines.append(f"      {problem.where}: {problem.message}")
            if problem.fix != problems[0].fix:
                lines.append(f"         fix: {problem.fix}")
        if count > max_show:
            lines.append(f"      ... and {count - max_show} more")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from detbox.data.dataset_report import check_coco_dataset
    from detbox.utils.io import atomic_write_text

    reports = []
    for target in _targets(args):
        report = check_coco_dataset(target["ann_file"], target["img_dir"], target["class_names"])
        print(format_report(report, target, args.max_show))
        reports.append((target, report))
    errors = sum(len(r.errors) for _, r in reports)
    warnings = sum(len(r.warnings) for _, r in reports)
    print(f"{errors} errors, {warnings} warnings in {len(reports)} annotation file(s)")
    if args.json_out:
        payload = {"num_errors": errors, "num_warnings": warnings, "datasets": [
            {"split": t["split"], **r.to_dict()} for t, r in reports]}
        atomic_write_text(args.json_out, json.dumps(payload, indent=1, default=str) + "\n")
        print(f"report written to {args.json_out}")
    return 1 if errors else 0
