"""``detbox browse-dataset CONFIG --out DIR``: pictures of what the model is trained on.

Each picture is a dataset item after the whole pipeline (augmentations included), with the
normalization undone and the ground truth drawn: boxes, class names, masks, and crowd/ignored
regions labelled ``ignored``. Wrong boxes, flipped masks or an over-strong augmentation show at
a glance. An image that cannot be read is reported and skipped (the train split draws another
one in its place, as training does).
"""

from __future__ import annotations

import argparse
import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from detbox.errors import ConfigError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "browse-dataset", help="save images with their ground truth drawn, after the transforms")
    parser.add_argument("config", help="config file (.py, .yaml or .json)")
    parser.add_argument("--out", required=True, help="folder to save the pictures in")
    parser.add_argument("--num", type=int, default=20, help="number of images (default: 20)")
    parser.add_argument("--split", choices=["train", "val", "test"], default="train",
                        help="which data loader's dataset and pipeline (default: train)")
    parser.add_argument("--shuffle", action="store_true",
                        help="random images instead of the first ones")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of --shuffle and of the random augmentations (default: 0)")
    parser.add_argument("--cfg-options", nargs="+", default=[], metavar="KEY=VALUE",
                        help="override config keys, as for train")
    parser.add_argument("--strict", action="store_true",
                        help="exit with status 1 when an image could not be read")
    parser.set_defaults(func=run)


def _dataset(cfg: Mapping[str, Any], split: str):
    from detbox.data import build_dataset

    section = cfg.get(f"{split}_dataloader")
    if not section or not section.get("dataset"):
        raise ConfigError(f"the config has no {split}_dataloader.dataset to browse")
    return build_dataset(section["dataset"])


def run(args: argparse.Namespace) -> int:
    import torch

    from detbox.cli.common import load_config_with_options, report_unreadable
    from detbox.data.skipping import UnreadableFiles, UnreadableImage
    from detbox.structures import DetSample
    from detbox.visualization import denormalize, ground_truth, save_visualization

    cfg = load_config_with_options(args)
    random.seed(args.seed)
    torch.manual_seed(args.seed)
    dataset = _dataset(cfg, args.split)
    count = min(max(args.num, 0), len(dataset))
    indices = random.sample(range(len(dataset)), count) if args.shuffle else range(count)
    names = [*getattr(dataset, "class_names", []), "ignored"]
    out = Path(args.out)
    unreadable = UnreadableFiles("images")
    written = 0
    for index in indices:
        item = dataset[index]
        if isinstance(item, UnreadableImage):
            unreadable.add(item.path, item.reason)
            continue
        if not (isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], DetSample)):
            raise ConfigError("browse-dataset needs a pipeline ending in PackDetInputs")
        image, sample = item
        for path, reason in sample.extra.get("skipped_images", ()):
            unreadable.add(path, "replaced by another image", reason)
        pixels = denormalize(image, sample.extra.get("img_norm"))
        instances = ground_truth(sample, len(names) - 1)
        # at the size the model sees: the picture shows what Resize and crops did
        save_visualization(pixels, instances, names,
                           out / f"{index:05d}_{Path(sample.file_name).stem}.png", score_thr=0.0,
                           min_side=0)
        written += 1
    unreadable.check_some_read(count)
    print(f"{written} pictures of the {args.split} data (after its pipeline) written to {out}")
    return report_unreadable(unreadable, written + len(unreadable), args.strict)
