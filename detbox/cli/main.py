"""The ``detbox`` command: one subcommand per module in ``detbox.cli``."""

from __future__ import annotations

import argparse
import importlib
import sys

from detbox.errors import DetboxError

# Each module exposes ``register(subparsers)``, which adds its parser with ``func=run``.
SUBCOMMANDS = ("train", "test", "infer", "eval", "demo", "convert_weights", "convert_dataset",
               "analyze_logs", "flops", "publish", "export_onnx", "benchmark", "env",
               "check_dataset", "browse_dataset", "registry", "configs", "print_config", "serve",
               "test_robustness", "analyze_results")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="detbox", description="Object detection and instance segmentation toolbox."
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in SUBCOMMANDS:
        importlib.import_module(f"detbox.cli.{name}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except DetboxError as exc:
        print(f"detbox {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"detbox {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
