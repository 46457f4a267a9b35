"""``detbox train CONFIG``: train a detector."""

from __future__ import annotations

import argparse
from pathlib import Path

from detbox.cli.common import add_config_arguments, default_work_dir, load_config_with_options
from detbox.utils.device import resolve_device


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("train", help="train a detector from a config")
    add_config_arguments(parser)
    parser.add_argument(
        "--work-dir", help="where logs and checkpoints go (default: work_dirs/<config>)"
    )
    start = parser.add_mutually_exclusive_group()
    start.add_argument(
        "--resume",
        nargs="?",
        const="auto",
        metavar="CKPT",
        help="continue a run exactly where it stopped: a checkpoint, or 'auto' (the default when "
        "the flag is given alone) for the latest one in the work dir",
    )
    start.add_argument(
        "--load-from",
        metavar="CKPT",
        help="start from these weights only (fine-tuning); heads whose shapes differ are "
        "re-initialised and listed",
    )
    parser.add_argument(
        "--seed", type=int, default=None, help="random seed (default: the config's, else 0)"
    )
    parser.add_argument(
        "--deterministic", action="store_true", help="use deterministic algorithms (slower)"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from detbox.apis.training import train_detector

    cfg = load_config_with_options(args)
    work_dir = Path(args.work_dir or cfg.get("work_dir") or default_work_dir(args.config))
    cfg["work_dir"] = str(work_dir)
    device = resolve_device(args.device or cfg.get("device"))
    metrics = train_detector(
        cfg,
        work_dir=work_dir,
        device=device,
        resume=args.resume or cfg.get("resume"),
        load_from=args.load_from or cfg.get("load_from"),
        seed=args.seed,
        deterministic=args.deterministic or bool(cfg.get("deterministic", False)),
    )
    print(f"training finished; checkpoints and logs in {work_dir}")
    if metrics:
        print("final metrics: " + ", ".join(f"{k}={v:.4f}" for k, v in metrics.items()
                                             if isinstance(v, float)))
    return 0
