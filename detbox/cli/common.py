"""Argument handling shared by the subcommands."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from detbox.config import ConfigDict, apply_options, load_config, parse_options


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="config file (.py, .yaml or .json) or a shipped "
                        "recipe's name (see `detbox configs`)")
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


def add_strict_argument(parser: argparse.ArgumentParser, what: str) -> None:
    """``--strict``: exit with status 1 when ``what`` happened."""
    parser.add_argument("--strict", action="store_true",
                        help=f"exit with status 1 when {what}")


def report_unreadable(unreadable, total: int, strict: bool) -> int:
    """Print the summary of the skipped inputs (if any) to stderr; the exit status.

    Args:
        unreadable: the command's ``detbox.data.skipping.UnreadableFiles``.
        total: how many inputs there were, read or not.
        strict: whether a skipped input fails the command (status 1).
    """
    if not len(unreadable):
        return 0
    print(unreadable.summary(total), file=sys.stderr)
    return 1 if strict else 0


#: ``--backend`` values (``detbox.deploy.backends.BACKEND_CHOICES``, spelt out here so that
#: registering the subcommands imports no runtime).
BACKEND_CHOICES = ("pytorch", "onnxruntime", "openvino")


def add_backend_argument(parser: argparse.ArgumentParser) -> None:
    """``--backend``: run the model's networks on an exported CPU runtime."""
    parser.add_argument(
        "--backend", default="pytorch", choices=BACKEND_CHOICES,
        help="pytorch (default), or run the exported networks with onnxruntime or openvino on "
             "the CPU (exported and checked against PyTorch first; see docs/tools.md)")


def backend_device(args: argparse.Namespace, cfg: ConfigDict):
    """The device to load the model on: the CPU for an exported backend (an explicit other
    ``--device`` is an error), else ``--device`` or the config's."""
    from detbox.errors import ConfigError
    from detbox.utils.device import resolve_device

    backend = getattr(args, "backend", "pytorch")
    if backend == "pytorch":
        return resolve_device(args.device or cfg.get("device"))
    if args.device not in (None, "cpu"):
        raise ConfigError(f"--backend {backend} runs on the CPU; drop --device {args.device} "
                          "(or use --backend pytorch)")
    return resolve_device("cpu")


def to_backend(model, args: argparse.Namespace):
    """``model`` itself for ``--backend pytorch``; else the plain CPU ``model`` exported to
    the backend and checked against PyTorch (the check's summary is printed)."""
    if getattr(args, "backend", "pytorch") == "pytorch":
        return model
    from detbox.deploy.backends import backend_detector

    runner = backend_detector(model, args.backend)
    print(f"parity check: {runner.parity.summary()}")
    return runner
