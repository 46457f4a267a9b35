"""``detbox publish IN OUT``: a checkpoint fit to share (weights + meta, hash in the name)."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "publish", help="strip training state from a checkpoint and put its hash in the name"
    )
    parser.add_argument("in_file", metavar="IN", help="checkpoint to publish")
    parser.add_argument("out_file", metavar="OUT",
                        help="output name; -<first 8 hex of sha256>.pth is appended")
    parser.add_argument("--safetensors", action="store_true",
                        help="write a .safetensors file (meta in its header) instead of .pth")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from detbox.deploy.publish import publish_checkpoint

    result = publish_checkpoint(args.in_file, args.out_file, safetensors=args.safetensors)
    dropped = ", ".join(result.dropped) if result.dropped else "nothing"
    size_mb = result.path.stat().st_size / 2**20
    print(f"published {result.num_tensors} tensors to {result.path} ({size_mb:.1f} MiB); "
          f"dropped {dropped}")
    print(f"sha256 {result.sha256}")
    return 0
