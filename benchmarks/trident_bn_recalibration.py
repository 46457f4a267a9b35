"""Does a trained TridentNet suffer from BN statistics shared by its branches?

With trainable BN, the shared res4 blocks (and res5) keep one set of running statistics for
all three branches, while testing runs one branch. This script re-estimates every BN layer's
statistics from training images passed through the test branch alone (a cumulative average
over ``--batches`` batches), then scores the model on the val split.

    python benchmarks/trident_bn_recalibration.py \
        configs/tridentnet/tridentnet_r18_c4_synthetic.py \
        work_dirs/tridentnet_r18_c4_synthetic/latest.pth --batches 30
"""

from __future__ import annotations

import argparse

import torch
from torch import nn

from detbox.apis.evaluate import evaluate_detector
from detbox.apis.inference import init_detector
from detbox.config import load_config
from detbox.data import build_dataloader


def recalibrate(model: nn.Module, loader, batches: int) -> None:
    """Reset BN statistics and re-estimate them with the test branch only."""
    branch = model.backbone.test_branch_idx
    model.backbone.active_branches = lambda: (branch,)
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.reset_running_stats()
            module.momentum = None
    model.train()
    with torch.no_grad():
        for index, batch in enumerate(loader):
            if index == batches:
                break
            model.predict(batch)
    model.eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config")
    parser.add_argument("checkpoint")
    parser.add_argument("--batches", type=int, default=30)
    args = parser.parse_args()
    torch.manual_seed(0)
    cfg = load_config(args.config)
    model = init_detector(args.config, args.checkpoint, device="cpu", fast=False)
    val = dict(cfg.val_dataloader)
    train_images = dict(val, dataset=dict(val["dataset"], split="train",
                                          num_images=cfg.train_dataloader["dataset"]["num_images"]))
    recalibrate(model, build_dataloader(train_images, training=False), args.batches)
    metrics = evaluate_detector(model, build_dataloader(val, training=False),
                                torch.device("cpu"), ["bbox"])
    print({k: round(v, 4) for k, v in metrics.items() if isinstance(v, float)})


if __name__ == "__main__":
    main()
