"""``detbox browse-dataset CONFIG --out DIR``: pictures of what the model is trained on.

Each picture is a dataset item after the whole pipeline (augmentations included), with the
normalization undone and the ground truth drawn: boxes, class names, masks, and crowd/ignored
regions labelled ``ignored``. Wrong boxes, flipped masks or an over-strong augmentation show at
a glance.
"""

from __future__ import annotations

import argparse
import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from detbox.errors import ConfigError
from detbox.structures import DetSample, Instances


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
    parser.set_defaults(func=run)


def denormalize(image: Tensor, img_norm: Mapping[str, Any] | None) -> np.ndarray:
    """(3, H, W) image as the pipeline left it -> (H, W, 3) uint8 RGB for display.

    ``img_norm`` is what ``Normalize`` recorded (``mean``/``std`` on the 0-255 scale); without
    it the image is taken to be on the 0-255 scale already.
    """
    image = image.detach().float().cpu()
    if img_norm:
        std = torch.tensor(img_norm["std"], dtype=image.dtype).view(3, 1, 1)
        mean = torch.tensor(img_norm["mean"], dtype=image.dtype).view(3, 1, 1)
        image = image * std + mean
    return image.clamp(0, 255).round().to(torch.uint8).permute(1, 2, 0).numpy()


def ground_truth(sample: DetSample, num_classes: int) -> Instances:
    """The sample's objects plus its ignored boxes as extra label ``num_classes``."""
    gt = sample.gt if sample.gt is not None else Instances.empty()
    ignored = sample.ignored_boxes.reshape(-1, 4).float()
    if len(ignored) == 0:
        return gt
    masks = None
    if gt.masks is not None:
        masks = torch.cat([gt.masks, gt.masks.new_zeros((len(ignored), *gt.masks.shape[1:]))])
    labels = torch.full((len(ignored),), num_classes, dtype=torch.int64)
    return Instances(boxes=torch.cat([gt.boxes.float(), ignored]),
                     labels=torch.cat([gt.labels, labels]), masks=masks)


def _dataset(cfg: Mapping[str, Any], split: str):
    from detbox.data import build_dataset

    section = cfg.get(f"{split}_dataloader")
    if not section or not section.get("dataset"):
        raise ConfigError(f"the config has no {split}_dataloader.dataset to browse")
    return build_dataset(section["dataset"])


def run(args: argparse.Namespace) -> int:
    from detbox.cli.common import load_config_with_options
    from detbox.visualization import save_visualization

    cfg = load_config_with_options(args)
    random.seed(args.seed)
    torch.manual_seed(args.seed)
    dataset = _dataset(cfg, args.split)
    count = min(max(args.num, 0), len(dataset))
    indices = random.sample(range(len(dataset)), count) if args.shuffle else range(count)
    names = [*getattr(dataset, "class_names", []), "ignored"]
    out = Path(args.out)
    for index in indices:
        item = dataset[index]
        if not (isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], DetSample)):
            raise ConfigError("browse-dataset needs a pipeline ending in PackDetInputs")
        image, sample = item
        for path, reason in sample.extra.get("skipped_images", ()):
            print(f"skipped {path}: {reason}")
        pixels = denormalize(image, sample.extra.get("img_norm"))
        instances = ground_truth(sample, len(names) - 1)
        save_visualization(pixels, instances, names,
                           out / f"{index:05d}_{Path(sample.file_name).stem}.png", score_thr=0.0)
    print(f"{count} pictures of the {args.split} data (after its pipeline) written to {out}")
    return 0
