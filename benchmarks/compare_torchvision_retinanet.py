"""detbox vs torchvision: the demo RetinaNet recipe trained by both, side by side.

Same synthetic data, same image size, backbone (ResNet-18 from scratch), optimizer, schedule,
batch size, epochs and seed; both evaluated by the same COCO evaluator on the same val split.
torchvision's model is given the demo's architecture (64-channel FPN P3-P6, 2 GN head convs,
the same anchors, GIoU box loss); ``--width 256 --head-convs 4`` gives it its default head.

    python benchmarks/compare_torchvision_retinanet.py --epochs 6 --out work_dirs/compare
"""

from __future__ import annotations

import argparse
import json
import math
import time
from functools import partial
from pathlib import Path

import torch
from torch import nn
from torchvision.models import resnet18
from torchvision.models.detection import RetinaNet
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.backbone_utils import BackboneWithFPN
from torchvision.models.detection.retinanet import RetinaNetHead
from torchvision.ops.feature_pyramid_network import ExtraFPNBlock

from detbox.apis.evaluate import build_evaluator
from detbox.apis.training import train_detector
from detbox.config import load_config
from detbox.data import build_dataloader
from detbox.engine import set_random_seed
from detbox.structures import Instances

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "configs/demo/retinanet_r18_fpn_synthetic.py"


class LastLevelP6(ExtraFPNBlock):
    """One extra level from C5 by a stride-2 conv, as the demo config's FPN (P3-P6)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.p6 = nn.Conv2d(in_channels, out_channels, 3, stride=2, padding=1)

    def forward(self, results, x, names):
        results.append(self.p6(x[-1]))
        names.append("p6")
        return results, names


def torchvision_retinanet(num_classes: int, width: int, head_convs: int, size: int) -> nn.Module:
    """torchvision's RetinaNet with the demo's backbone, levels (P3-P6), anchors and losses."""
    body = resnet18(weights=None, norm_layer=nn.BatchNorm2d)
    backbone = BackboneWithFPN(body, {"layer2": "0", "layer3": "1", "layer4": "2"},
                               [128, 256, 512], width, extra_blocks=LastLevelP6(512, width))
    strides = (8, 16, 32, 64)
    sizes = tuple((2 * s, 2 * s * 2 ** (1 / 3), 2 * s * 2 ** (2 / 3)) for s in strides)
    anchors = AnchorGenerator(sizes, ((0.5, 1.0, 2.0),) * len(sizes))
    head = RetinaNetHead(width, anchors.num_anchors_per_location()[0], num_classes,
                         norm_layer=partial(nn.GroupNorm, 32))
    head.classification_head.conv = head.classification_head.conv[:head_convs]
    head.regression_head.conv = head.regression_head.conv[:head_convs]
    head.regression_head._loss_type = "giou"
    return RetinaNet(backbone, num_classes, min_size=size, max_size=size, anchor_generator=anchors,
                     head=head, image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225])


def to_torchvision(batch, mean, std):
    images, targets = [], []
    for image, sample in zip(batch.images, batch.samples):
        h, w = sample.img_shape
        images.append((image[:, :h, :w] * std + mean) / 255.0)
        targets.append({"boxes": sample.gt.boxes, "labels": sample.gt.labels})
    return images, targets


def train_torchvision(
    cfg, epochs: int, width: int, head_convs: int, seed: int
) -> tuple[nn.Module, float]:
    set_random_seed(seed)
    loader = build_dataloader(cfg.train_dataloader, seed=seed, training=True)
    size = cfg.train_pipeline[2]["scale"][0]
    model = torchvision_retinanet(len(loader.dataset.class_names), width, head_convs, size)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.optimizer.lr,
                                  weight_decay=cfg.optimizer.weight_decay)
    total, warmup = epochs * len(loader), cfg.lr_schedule.warmup_iters
    mean = torch.tensor(cfg.img_norm["mean"]).view(3, 1, 1)
    std = torch.tensor(cfg.img_norm["std"]).view(3, 1, 1)
    start, step = time.perf_counter(), 0
    model.train()
    for epoch in range(epochs):
        loader.set_epoch(epoch)
        for batch in loader:
            factor = 0.5 * (1 + math.cos(math.pi * step / total))
            if step < warmup:
                ratio = cfg.lr_schedule.warmup_ratio
                factor *= ratio + (1 - ratio) * step / warmup
            for group in optimizer.param_groups:
                group["lr"] = cfg.optimizer.lr * factor
            losses = model(*to_torchvision(batch, mean, std))
            loss = sum(losses.values())
            optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 10.0)
            optimizer.step()
            step += 1
    return model, time.perf_counter() - start


@torch.no_grad()
def evaluate_torchvision(model: nn.Module, cfg) -> dict:
    loader = build_dataloader(cfg.val_dataloader, training=False)
    evaluator = build_evaluator(loader.dataset, ["bbox"], classwise=False)
    mean = torch.tensor(cfg.img_norm["mean"]).view(3, 1, 1)
    std = torch.tensor(cfg.img_norm["std"]).view(3, 1, 1)
    model.eval()
    for batch in loader:
        images, _ = to_torchvision(batch, mean, std)
        outputs = model(images)
        predictions = []
        for out, sample in zip(outputs, batch.samples):
            sx, sy = sample.scale_factor
            boxes = out["boxes"] / torch.tensor([sx, sy, sx, sy])
            predictions.append(Instances(boxes=boxes, labels=out["labels"], scores=out["scores"]))
        evaluator.process(batch.samples, predictions)
    return evaluator.evaluate()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="work_dirs/compare_torchvision")
    parser.add_argument("--width", type=int, default=64, help="torchvision FPN/head channels")
    parser.add_argument("--head-convs", type=int, default=2, help="torchvision head tower depth")
    args = parser.parse_args()
    out = Path(args.out)
    cfg = load_config(DEMO)
    cfg.train_cfg.max_epochs = args.epochs

    start = time.perf_counter()
    detbox_metrics = train_detector(cfg, work_dir=out / "detbox", device=torch.device("cpu"),
                                    seed=args.seed)
    detbox_seconds = time.perf_counter() - start

    cfg = load_config(DEMO)
    width, convs = args.width, args.head_convs
    model, tv_seconds = train_torchvision(cfg, args.epochs, width, convs, args.seed)
    tv_metrics = evaluate_torchvision(model, cfg)
    report = {
        "epochs": args.epochs,
        "detbox": {"bbox_mAP": detbox_metrics["bbox_mAP"],
                   "bbox_mAP_50": detbox_metrics["bbox_mAP_50"],
                   "train_seconds": round(detbox_seconds, 1)},
        "torchvision": {"bbox_mAP": tv_metrics["bbox_mAP"],
                        "bbox_mAP_50": tv_metrics["bbox_mAP_50"],
                        "train_seconds": round(tv_seconds, 1), "fpn_width": width,
                        "head_convs": convs},
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
