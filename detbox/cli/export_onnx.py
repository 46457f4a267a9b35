"""``detbox export-onnx CONFIG CHECKPOINT OUT.onnx``: export, then check against PyTorch."""

from __future__ import annotations

import argparse

from detbox.cli.common import add_config_arguments, load_config_with_options
from detbox.cli.flops import add_shape_argument, parse_shape


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export-onnx", help="export a detector (with decoding and NMS) to ONNX and verify it"
    )
    add_config_arguments(parser)
    parser.add_argument("checkpoint", help="checkpoint file (.pth or .safetensors)")
    parser.add_argument("out", help="the .onnx file to write")
    add_shape_argument(parser, (800, 1344))
    parser.add_argument("--images", default=None,
                        help="an image, folder or glob to verify on, besides random images")
    parser.add_argument("--opset", type=int, default=17)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from detbox.apis.inference import load_detector
    from detbox.cli.infer import list_inputs
    from detbox.deploy.onnx_export import export_onnx, verification_images, verify_onnx
    from detbox.errors import DetboxError

    shape = parse_shape(args.shape)
    cfg = load_config_with_options(args)
    model = load_detector(cfg, args.checkpoint, torch.device("cpu"))
    path = export_onnx(model, args.out, shape, args.opset)
    print(f"exported {type(model).__name__} to {path} (dynamic height and width; traced at "
          f"{shape[0]}x{shape[1]})")
    images = verification_images(shape)
    if args.images:
        images = [(str(p), str(p), None) for p in list_inputs(args.images)] + images
    failed = []
    for report in verify_onnx(model, path, images):
        status = "ok" if report.ok else "MISMATCH"
        print(f"  {report.name}: input {report.input_shape[0]}x{report.input_shape[1]}, "
              f"{report.num_torch} detections (PyTorch) vs {report.num_onnx} (onnxruntime), "
              f"max |box diff| {report.max_box_diff:.2e} px, max |score diff| "
              f"{report.max_score_diff:.2e}: {status}")
        for problem in report.problems[:5]:
            print(f"    {problem}")
        if not report.ok:
            failed.append(report.name)
    if failed:
        raise DetboxError(f"onnxruntime's detections differ from PyTorch's on {len(failed)} of "
                          f"{len(images)} images ({', '.join(failed)}); do not deploy {path}")
    print(f"onnxruntime matches PyTorch on all {len(images)} images")
    return 0
