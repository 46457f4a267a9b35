"""``detbox test-robustness CONFIG CHECKPOINT``: the robustness benchmark (AP under image
corruptions, mPC and rPC), on ``detbox test``'s data, model loading and evaluation."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from detbox.cli.common import (
    add_backend_argument,
    add_config_arguments,
    load_config_with_options,
)
from detbox.cli.test import evaluation_section, load_test_model, start_test_processes
from detbox.cli.train import add_launcher_argument
from detbox.errors import ConfigError

EVAL_TYPES = ("bbox", "segm")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "test-robustness",
        help="evaluate a checkpoint on the test split under image corruptions (mPC, rPC)")
    add_config_arguments(parser)
    parser.add_argument("checkpoint", help="checkpoint file (.pth)")
    parser.add_argument(
        "--corruptions", nargs="+", default=["benchmark"], metavar="NAME",
        help="benchmark (the 15, default), all (the 19), a group (noise, blur, weather, "
             "digital) or corruption names (gaussian_noise, fog, ...)")
    parser.add_argument("--severities", nargs="+", type=int, default=[0, 1, 2, 3, 4, 5],
                        metavar="S", help="severities 0 (clean) to 5 (default: all six)")
    parser.add_argument("--eval", nargs="+", default=None, choices=EVAL_TYPES,
                        help="COCO eval types (default: the config's evaluation.metric "
                             "among bbox and segm, else bbox)")
    parser.add_argument("--out", default="work_dirs/robustness", metavar="DIR",
                        help="folder for robustness.json and robustness.png "
                             "(default: work_dirs/robustness)")
    parser.add_argument("--num-images", type=int, default=None, metavar="N",
                        help="evaluate only the first N images of the test split")
    add_launcher_argument(parser)
    parser.add_argument("--no-fast", action="store_true",
                        help="run the plain model, not the inference fast path")
    add_backend_argument(parser)
    parser.set_defaults(func=run)


def _eval_types(args: argparse.Namespace, cfg) -> list[str]:
    if args.eval:
        return list(dict.fromkeys(args.eval))
    metrics = (cfg.get("evaluation") or {}).get("metric", ["bbox"])
    metrics = [metrics] if isinstance(metrics, str) else list(metrics)
    return [m for m in metrics if m in EVAL_TYPES] or ["bbox"]


def _check_args(args: argparse.Namespace) -> None:
    bad = [s for s in args.severities if not 0 <= s <= 5]
    if bad:
        raise ConfigError(f"--severities must be 0 (clean) to 5, got {bad}")
    if args.num_images is not None and args.num_images <= 0:
        raise ConfigError(f"--num-images must be positive, got {args.num_images}")


def run(args: argparse.Namespace) -> int:
    from detbox.apis.robustness import evaluate_robustness
    from detbox.data import build_dataset
    from detbox.data.transforms.corrupt import corruption_names, load_imagecorruptions
    from detbox.engine import get_rank, get_world_size
    from detbox.evaluation.robustness import format_robustness, robustness_summary
    from detbox.utils.io import atomic_write_text

    _check_args(args)
    corruptions = corruption_names(args.corruptions)
    if any(s > 0 for s in args.severities):
        load_imagecorruptions()  # a missing package fails before the model loads
    cfg = load_config_with_options(args)
    device = start_test_processes(args, cfg)
    rank = get_rank()
    section = evaluation_section(cfg, args.config)
    eval_types = _eval_types(args, cfg)
    model = load_test_model(cfg, args, device, build_dataset(section["dataset"]))

    def report(corruption: str, severity: int, stats: dict) -> None:
        scores = "  ".join(f"{kind} AP {values['AP']:.3f}" for kind, values in stats.items())
        print(f"{corruption} severity {severity}: {scores}", flush=True)

    results = evaluate_robustness(
        model, section, device, corruptions, args.severities, eval_types,
        seed=int(cfg.get("seed", 0)), rank=rank, world_size=get_world_size(),
        num_images=args.num_images, backend=(cfg.get("evaluation") or {}).get("backend"),
        on_result=report)
    if rank != 0:
        return 0
    results = {"config": str(args.config), "checkpoint": str(args.checkpoint),
               "eval_types": eval_types, "severities": sorted(set(args.severities)),
               **results,
               "summary": {kind: robustness_summary(results, kind) for kind in eval_types}}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "robustness.json", json.dumps(results, indent=2) + "\n")
    for kind in eval_types:
        print("\n" + format_robustness(results, kind))
    print(f"\nwrote {out / 'robustness.json'}")
    _plot(results, out / "robustness.png", tuple(eval_types))
    return 0


def _plot(results: dict, out_file: Path, eval_types: tuple[str, ...]) -> None:
    from detbox.analysis.robustness_plot import plot_robustness

    try:
        print(f"wrote {plot_robustness(results, out_file, eval_types)}")
    except ImportError:
        print("matplotlib is not installed, so no robustness.png: pip install 'detbox[tools]'")
