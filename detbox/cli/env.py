"""``detbox env``: the environment to paste into a bug report."""

from __future__ import annotations

import argparse
import json


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "env", help="print versions, hardware and backends (paste it into bug reports)"
    )
    parser.add_argument("--build", action="store_true",
                        help="also print torch's build configuration (compiler, BLAS, flags)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from detbox.analysis.env_report import collect_env, format_env

    env = collect_env()
    if args.json:
        if not args.build:
            env.pop("build configuration")
        print(json.dumps(env, indent=1, default=str))
    else:
        print(format_env(env, with_build=args.build), end="")
    return 0
