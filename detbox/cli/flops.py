"""``detbox flops CONFIG``: FLOPs and parameters of a detector, per module."""

from __future__ import annotations

import argparse
import json

from detbox.cli.common import add_config_arguments, load_config_with_options
from detbox.errors import ConfigError


def add_shape_argument(parser: argparse.ArgumentParser, default: tuple[int, int]) -> None:
    parser.add_argument("--shape", type=int, nargs="+", default=list(default), metavar="N",
                        help=f"input height and width, or one side for a square "
                             f"(default: {default[0]} {default[1]})")


def parse_shape(values: list[int]) -> tuple[int, int]:
    """``[S]`` -> ``(S, S)``; ``[H, W]`` -> ``(H, W)``."""
    if len(values) not in (1, 2) or min(values) <= 0:
        raise ConfigError(f"--shape takes one or two positive sizes (H W), got {values}")
    return (values[0], values[0]) if len(values) == 1 else (values[0], values[1])


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("flops", help="count FLOPs and parameters per module")
    add_config_arguments(parser)
    add_shape_argument(parser, (800, 1333))
    parser.add_argument("--checkpoint", default=None,
                        help="take the classes (and weights) from this checkpoint")
    parser.add_argument("--num-classes", type=int, default=None,
                        help="classes of the random-weight model when the config leaves "
                             "num_classes to the data (default: 80)")
    parser.add_argument("--depth", type=int, default=2,
                        help="module nesting shown in the table (default: 2)")
    parser.add_argument("--json-out", help="also write the report as JSON to this file")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import dataclasses

    import torch

    from detbox.deploy.flops import count_flops, format_flops_report
    from detbox.deploy.model_loading import model_from_config
    from detbox.utils.device import resolve_device
    from detbox.utils.io import atomic_write_text

    height, width = parse_shape(args.shape)
    cfg = load_config_with_options(args)
    device = resolve_device(args.device or "cpu")
    model = model_from_config(cfg, args.checkpoint, device, args.num_classes)
    # Two-stage costs depend on how many proposals the image yields: use a fixed random image.
    image = torch.randn(1, 3, height, width, generator=torch.Generator().manual_seed(0))
    report = count_flops(model, image.to(device))
    print(format_flops_report(report, depth=args.depth))
    print("FLOPs count each multiply-add as 2 and depend on the input size; ops listed as "
          "not counted add time but no FLOPs here.")
    if args.json_out:
        atomic_write_text(args.json_out, json.dumps(dataclasses.asdict(report), indent=1) + "\n")
        print(f"report written to {args.json_out}")
    return 0
