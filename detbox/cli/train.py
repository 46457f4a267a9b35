"""``detbox train CONFIG``: train a detector, on one device or one process per GPU."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from pathlib import Path

from detbox.cli.common import add_config_arguments, default_work_dir, load_config_with_options
from detbox.config import ConfigDict
from detbox.errors import ConfigError

# detbox.engine.launcher.LAUNCHERS, spelled out so that building the parser imports no torch
# (a test checks that the two agree).
LAUNCHER_CHOICES = ("auto", "none", "torchrun", "pytorch", "slurm")


def add_launcher_argument(parser: argparse.ArgumentParser) -> None:
    """``--launcher``, shared with ``detbox test``."""
    parser.add_argument(
        "--launcher", default="auto", choices=LAUNCHER_CHOICES,
        help="how the processes were started: torchrun (RANK/WORLD_SIZE/LOCAL_RANK set, see "
        "tools/dist_train.sh), slurm (inside srun, see tools/slurm_train.sh), none (one "
        "process), or auto (the default: whichever the environment shows)",
    )


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("train", help="train a detector from a config")
    add_config_arguments(parser)
    parser.add_argument("--work-dir",
                        help="where logs and checkpoints go (default: work_dirs/<config>)")
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
    parser.add_argument("--seed", type=int, default=None,
                        help="random seed (default: config's, else 0); rank r uses seed + r")
    parser.add_argument(
        "--deterministic", action="store_true", help="use deterministic algorithms (slower)"
    )
    parser.add_argument(
        "--amp", nargs="?", const="auto", choices=("auto", "fp16", "bf16"), default=None,
        help="mixed precision (the config's amp section): fp16 with loss scaling (GPU), bf16, or "
        "auto (the default when the flag is given alone: fp16 on a GPU, bf16 on a CPU)",
    )
    parser.add_argument(
        "--auto-scale-lr", action="store_true",
        help="scale the lr linearly by the total batch (per-GPU batch x GPUs x accumulate_steps) "
        "over the config's auto_scale_lr.base_batch_size",
    )
    parser.add_argument(
        "--max-time", metavar="DURATION",
        help="a wall-clock budget such as 20m, 90s, 1h30m or seconds (train_cfg.max_time): "
        "training stops when it is spent, with the LR schedule laid over it, then evaluates "
        "and writes a final checkpoint",
    )
    add_launcher_argument(parser)
    parser.set_defaults(func=run)


def apply_flags(cfg: ConfigDict, args: argparse.Namespace) -> None:
    """Fold ``--amp``, ``--auto-scale-lr`` and ``--max-time`` into the config, so config.json
    records them."""
    if args.amp:
        amp = dict(cfg["amp"]) if isinstance(cfg.get("amp"), Mapping) else {}
        amp["enabled"] = True
        if args.amp != "auto" or "dtype" not in amp:
            amp["dtype"] = args.amp
        cfg["amp"] = amp
    if args.auto_scale_lr:
        section = cfg.get("auto_scale_lr")
        if not isinstance(section, Mapping) or "base_batch_size" not in section:
            raise ConfigError(
                "--auto-scale-lr needs auto_scale_lr = dict(base_batch_size=N) in the config: the "
                "total batch its lr was tuned for (16 for most COCO recipes: 8 GPUs x 2 images)"
            )
        cfg["auto_scale_lr"] = {**section, "enable": True}
    if getattr(args, "max_time", None):
        section = cfg.get("train_cfg")
        cfg["train_cfg"] = {**(section if isinstance(section, Mapping) else {}),
                            "max_time": args.max_time}


def run(args: argparse.Namespace) -> int:
    from detbox.engine import distributed_session, is_main_process
    from detbox.engine.interrupt import TrainingInterrupted

    cfg = load_config_with_options(args)
    apply_flags(cfg, args)
    work_dir = Path(args.work_dir or cfg.get("work_dir") or default_work_dir(args.config))
    cfg["work_dir"] = str(work_dir)
    main_process = True
    try:
        with distributed_session(args.launcher, args.device or cfg.get("device")) as device:
            main_process = is_main_process()
            metrics = _train(cfg, args, work_dir, device)
            if not main_process:
                return 0
    except TrainingInterrupted as exc:  # a resumable checkpoint was written
        if main_process:
            print(f"detbox train: {exc}", file=sys.stderr)
        return exc.exit_code
    print(f"training finished; checkpoints and logs in {work_dir}")
    if metrics:
        print("final metrics: " + ", ".join(f"{k}={v:.4f}" for k, v in metrics.items()
                                             if isinstance(v, float)))
    return 0


def _train(cfg: ConfigDict, args: argparse.Namespace, work_dir: Path, device) -> dict:
    from detbox.apis.training import train_detector

    return train_detector(
        cfg,
        work_dir=work_dir,
        device=device,
        resume=args.resume or cfg.get("resume"),
        load_from=args.load_from or cfg.get("load_from"),
        seed=args.seed,
        deterministic=args.deterministic or bool(cfg.get("deterministic", False)),
    )
