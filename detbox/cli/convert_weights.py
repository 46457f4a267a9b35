"""``detbox convert-weights torchvision ARCH IN.pth OUT.pth``: start from published weights."""

from __future__ import annotations

import argparse

SOURCES = ("torchvision",)
# detbox.models.weight_conversion.torchvision.SUPPORTED_ARCHS, spelled out so that building the
# parser imports no torch (a test checks that the two agree).
TORCHVISION_ARCHS = (
    "fasterrcnn_resnet50_fpn", "maskrcnn_resnet50_fpn", "retinanet_resnet50_fpn",
    "fcos_resnet50_fpn", "ssd300_vgg16", "ssdlite320_mobilenet_v3_large",
)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "convert-weights", help="convert another library's detection checkpoint to detbox"
    )
    parser.add_argument("source", choices=SOURCES, help="the library the checkpoint comes from")
    parser.add_argument("arch", choices=TORCHVISION_ARCHS, help="its model builder name")
    parser.add_argument("input", help="the checkpoint to convert (a state_dict .pth)")
    parser.add_argument("output", help="where to write the detbox checkpoint")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from detbox.apis.convert_weights import convert_torchvision_checkpoint

    meta = convert_torchvision_checkpoint(args.arch, args.input, args.output)
    print(f"wrote {args.output}: {meta['converted_from']}, {len(meta['class_names'])} classes; "
          f"use it with configs/torchvision/{args.arch}.py")
    return 0
