"""``detbox convert-weights torchvision ARCH IN.pth OUT.pth``: start from published weights."""

from __future__ import annotations

import argparse
import json

from detbox.errors import CheckpointError

SOURCES = ("torchvision",)
# detbox.models.weight_conversion.torchvision.SUPPORTED_ARCHS, spelled out so that building the
# parser imports no torch (a test checks that the two agree).
TORCHVISION_ARCHS = ("fasterrcnn_resnet50_fpn", "maskrcnn_resnet50_fpn", "retinanet_resnet50_fpn")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "convert-weights", help="convert another library's detection checkpoint to detbox"
    )
    parser.add_argument("source", choices=SOURCES, help="the library the checkpoint comes from")
    parser.add_argument("arch", choices=TORCHVISION_ARCHS, help="its model builder name")
    parser.add_argument("input", help="the checkpoint to convert (a state_dict .pth)")
    parser.add_argument("output", help="where to write the detbox checkpoint")
    parser.set_defaults(func=run)


def torchvision_coco_classes() -> tuple[list[str], list[int]]:
    """torchvision's COCO label names (from its weights' metadata) and their category ids.

    torchvision's label ``i`` (1..90) is COCO category id ``i``; ids COCO never used are named
    ``N/A`` there and never predicted by a trained model.
    """
    from torchvision.models.detection import FasterRCNN_ResNet50_FPN_Weights

    names = list(FasterRCNN_ResNet50_FPN_Weights.COCO_V1.meta["categories"])[1:]
    return names, list(range(1, len(names) + 1))


def convert_torchvision_checkpoint(arch: str, source: str, target: str) -> dict:
    """Convert a torchvision detection checkpoint into a detbox checkpoint file."""
    from detbox.engine import extract_state_dict, load_checkpoint
    from detbox.models.weight_conversion.torchvision import convert_torchvision_state_dict
    from detbox.utils.io import atomic_torch_save

    state = extract_state_dict(load_checkpoint(source))
    converted = convert_torchvision_state_dict(arch, state)
    names, cat_ids = torchvision_coco_classes()
    num_classes = _num_classes(arch, converted)
    if num_classes != len(names):
        names = [f"class_{i}" for i in range(1, num_classes + 1)]
        cat_ids = list(range(1, num_classes + 1))
    meta = {"class_names": names, "cat_ids": cat_ids, "converted_from": f"torchvision {arch}"}
    atomic_torch_save({"state_dict": converted, "meta": json.dumps(meta)}, target)
    return meta


def _num_classes(arch: str, state: dict) -> int:
    if arch.startswith("retinanet"):
        return state["bbox_head.cls_logits.bias"].numel() // 9
    key = next((k for k in state if k.endswith("fc_cls.weight")), None)
    if key is None:
        raise CheckpointError(f"the converted {arch} state dict has no classifier weights")
    return state[key].shape[0] - 1


def run(args: argparse.Namespace) -> int:
    meta = convert_torchvision_checkpoint(args.arch, args.input, args.output)
    print(f"wrote {args.output}: {meta['converted_from']}, {len(meta['class_names'])} classes; "
          f"use it with configs/torchvision/{args.arch}.py")
    return 0
