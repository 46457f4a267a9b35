"""``detbox convert-weights SOURCE ...``: start from published weights.

- ``detbox convert-weights torchvision ARCH IN.pth OUT.pth``: a torchvision detector;
- ``detbox convert-weights detectron-caffe IN.pkl OUT.pth``: Detectron / MSRA caffe ImageNet
  ResNet weights, for ``init_cfg=dict(backbone_checkpoint="OUT.pth")`` with
  ``ResNet(style="caffe")`` and BGR input (the ``*_caffe_*`` recipes).
"""

from __future__ import annotations

import argparse

SOURCES = ("torchvision", "detectron-caffe")
# detbox.models.weight_conversion.torchvision.SUPPORTED_ARCHS, spelled out so that building the
# parser imports no torch (a test checks that the two agree).
TORCHVISION_ARCHS = (
    "fasterrcnn_resnet50_fpn", "maskrcnn_resnet50_fpn", "retinanet_resnet50_fpn",
    "fcos_resnet50_fpn", "ssd300_vgg16", "ssdlite320_mobilenet_v3_large",
)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "convert-weights", help="convert another library's checkpoint to detbox"
    )
    sources = parser.add_subparsers(dest="source", metavar="SOURCE", required=True,
                                    help="the library the checkpoint comes from")
    torchvision = sources.add_parser(
        "torchvision", help="a torchvision detection checkpoint -> a detbox detector checkpoint")
    torchvision.add_argument("arch", choices=TORCHVISION_ARCHS, help="its model builder name")
    torchvision.add_argument("input", help="the checkpoint to convert (a state_dict .pth)")
    torchvision.add_argument("output", help="where to write the detbox checkpoint")
    torchvision.set_defaults(func=run)
    caffe = sources.add_parser(
        "detectron-caffe",
        help="Detectron/MSRA caffe ImageNet ResNet weights (.pkl) -> a backbone checkpoint")
    caffe.add_argument("input", help="the Detectron pickle (e.g. R-50.pkl)")
    caffe.add_argument("output", help="where to write the backbone state dict (.pth)")
    caffe.set_defaults(func=run_detectron_caffe)


def run(args: argparse.Namespace) -> int:
    from detbox.apis.convert_weights import convert_torchvision_checkpoint

    meta = convert_torchvision_checkpoint(args.arch, args.input, args.output)
    print(f"wrote {args.output}: {meta['converted_from']}, {len(meta['class_names'])} classes; "
          f"use it with configs/torchvision/{args.arch}.py")
    return 0


def run_detectron_caffe(args: argparse.Namespace) -> int:
    from detbox.apis.convert_weights import convert_detectron_caffe_checkpoint

    info = convert_detectron_caffe_checkpoint(args.input, args.output)
    print(f"wrote {args.output}: {info['arch']} (caffe style); use it as "
          f"model.init_cfg=dict(backbone_checkpoint='{args.output}') with "
          "backbone style='caffe' and Normalize(mean=[103.530, 116.280, 123.675], "
          "std=[1.0, 1.0, 1.0], to_rgb=False), as the *_caffe_* recipes do")
    return 0
