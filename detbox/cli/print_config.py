"""``detbox print-config CONFIG``: the config as the commands see it (bases merged, options
applied), as JSON."""

from __future__ import annotations

import argparse
import json


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "print-config", help="print a config (a file or a recipe name) with its _base_ files "
                             "merged and --cfg-options applied, as JSON")
    parser.add_argument("config", help="config file or a shipped recipe's name")
    parser.add_argument("--cfg-options", nargs="+", default=[], metavar="KEY=VALUE",
                        help="override config keys before printing")
    parser.add_argument("--defaults", action="store_true",
                        help="also fill in every constructor default the config leaves out")
    parser.add_argument("--path", action="store_true",
                        help="print only the file the config was read from")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from detbox.config import apply_options, config_to_jsonable, load_config, parse_options

    cfg = load_config(args.config)
    if args.path:
        print(cfg["_filename"])
        return 0
    apply_options(cfg, parse_options(args.cfg_options, context=cfg))
    if args.defaults:
        from detbox.config_defaults import expand_defaults

        data = expand_defaults(cfg)
    else:
        data = {k: v for k, v in config_to_jsonable(cfg).items() if k != "_filename"}
    print(json.dumps(data, indent=2))
    return 0
