"""``detbox analyze-results``: COCO error analysis of a box results file (what each kind of
error costs in AP), with stacked-area PR plots per category."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

AREAS = ("all", "small", "medium", "large")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "analyze-results",
        help="COCO error analysis of a results file (C75/C50/Loc/Sim/Oth/BG/FN curves)",
        description=(
            "Break a box results file's AP down by error type, as the COCO API's analyze(): "
            "PR curves at IoU .75 and .50, at .10 (localisation errors forgiven), with "
            "supercategory confusions, all class confusions, all false positives and all "
            "misses forgiven; overall and per category. Writes summary.json and stacked-area "
            "plots (DIR/<area>/overall.png, DIR/<area>/<category>.png)."
        ),
    )
    parser.add_argument("config", help="config whose test split is the ground truth, or a COCO "
                        "ground-truth .json file")
    parser.add_argument("results", metavar="RESULTS.json",
                        help="COCO box results (detbox test --out results.json, or "
                        "PREFIX.bbox.json)")
    parser.add_argument("--out", required=True, metavar="DIR", help="folder for the outputs")
    parser.add_argument("--areas", nargs="+", choices=AREAS, default=["all"],
                        help="area ranges to plot (default: all); summary.json has every one")
    parser.add_argument("--no-plots", action="store_true", help="write summary.json only")
    parser.add_argument("--cfg-options", nargs="+", default=[], metavar="KEY=VALUE",
                        help="override config keys")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from detbox.analysis.coco_error_plots import legend_lines, save_error_plots
    from detbox.analysis.coco_errors import CURVES, analyze_errors
    from detbox.evaluation import load_results
    from detbox.utils.io import atomic_write_text

    coco_gt = _ground_truth(args)
    analysis = analyze_errors(coco_gt, load_results(args.results))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    summary = analysis.summary()
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    print("\n".join(legend_lines()))
    width = max([8, *(len(n) for n in analysis.cat_names)])
    print(f"{'category':<{width}}  " + "  ".join(f"{c:>5}" for c in CURVES))
    rows = [("overall", summary["overall"]["all"])]
    rows += [(name, v["all"]) for name, v in summary["per_category"].items() if v["all"]]
    for name, aps in rows:
        print(f"{name:<{width}}  " + "  ".join(f"{aps[c]:>5.3f}" for c in CURVES))
    print(f"summary written to {out / 'summary.json'}")
    if not args.no_plots:
        written = save_error_plots(analysis, out, areas=args.areas)
        print(f"{len(written)} plots written under {out}")
    return 0


def _ground_truth(args: argparse.Namespace):
    """The COCO index of a ground-truth file, or of the config's test split."""
    from detbox.evaluation import load_coco_gt

    path = Path(args.config)
    if path.suffix == ".json" and path.is_file():
        data = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(data, dict) and "annotations" in data and "images" in data:
            return load_coco_gt(data)
    from detbox.cli.common import load_config_with_options
    from detbox.cli.test import evaluation_section
    from detbox.data import build_dataset

    cfg = load_config_with_options(args)
    return build_dataset(evaluation_section(cfg, args.config)["dataset"]).coco
