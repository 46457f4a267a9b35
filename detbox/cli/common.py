"""Argument handling shared by the subcommands."""

from __future__ import annotations

import argparse
from pathlib import Path

from detbox.config import ConfigDict, apply_options, load_config, parse_options


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="config file (.py, .yaml or .json)")
    parser.add_argument(
        "--cfg-options",
        nargs="+",
        default=[],
        metavar="KEY=VALUE",
        help="override config keys, e.g. train_cfg.max_epochs=3 optimizer.lr=0.02",
    )
    parser.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: auto)")


def load_config_with_options(args: argparse.Namespace) -> ConfigDict:
    cfg = load_config(args.config)
    return apply_options(cfg, parse_options(args.cfg_options, context=cfg))


def default_work_dir(config_path: str) -> Path:
    """``work_dirs/<config name>``, as MMDetection users expect."""
    return Path("work_dirs") / Path(config_path).stem
