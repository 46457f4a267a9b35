"""Parity on a trained model: the fast path and each exported backend against the plain path.

Random weights (``bench_inference.py``) give detections no trained model gives: scores near
uniform, boxes anywhere. This trains a small model on the built-in synthetic shapes (or reuses
``<work-dir>/latest.pth``), predicts the synthetic val images with the plain model, the fast
path and each backend, and reports per path: the fraction of identical detections (same label,
box corners within 0.01 px, score within 1e-4, matched one to one; over all val images), the
fraction of identical masks among those, and the box AP of each path.

    PYTHONPATH=$PWD python benchmarks/bench_parity_trained.py
    PYTHONPATH=$PWD python benchmarks/bench_parity_trained.py \\
        --config configs/demo/retinanet_r18_fpn_synthetic.py --work-dir work_dirs/parity_retina \\
        --epochs 1 --train-options train_dataloader.dataset.num_images=600

On one thread (the default) the fast path runs its large 3x3 convolutions by Winograd's
algorithm; ``--winograd-everywhere`` lowers its size thresholds so that the small synthetic
images take that path too.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import torch

from detbox.apis.evaluate import build_evaluator, run_inference
from detbox.apis.inference import init_detector
from detbox.config import load_config
from detbox.data import build_dataloader
from detbox.deploy.backends import BACKENDS, backend_detector
from detbox.deploy.onnx_export import final_head
from detbox.models import winograd_conv
from detbox.structures import Instances

REPO = Path(__file__).resolve().parents[1]
BOX_TOL, SCORE_TOL = 0.01, 1e-4


def checkpoint_for(config: Path, work_dir: Path, epochs: int, options: list[str]) -> Path:
    """``work_dir/latest.pth``, trained first (``detbox train``, ``epochs`` epochs, more
    ``--cfg-options``) if absent."""
    latest = work_dir / "latest.pth"
    if not latest.is_file():
        print(f"training {config} for {epochs} epochs into {work_dir}", flush=True)
        subprocess.run([sys.executable, "-m", "detbox.cli.main", "train", str(config),
                        "--device", "cpu", "--work-dir", str(work_dir), "--cfg-options",
                        f"train_cfg.max_epochs={epochs}", f"train_cfg.val_interval={epochs}",
                        "checkpoint.interval=1", *options], check=True, cwd=REPO)
    return latest


def identical_counts(ref: Instances, got: Instances) -> tuple[int, int, int]:
    """(identical detections, max(len(ref), len(got)), identical masks among the former)."""
    free = torch.ones(len(got), dtype=torch.bool)
    matched = same_masks = 0
    for i in range(len(ref)):
        close = (free & (got.labels == ref.labels[i])
                 & ((got.boxes - ref.boxes[i]).abs().amax(dim=1) <= BOX_TOL)
                 & ((got.scores - ref.scores[i]).abs() <= SCORE_TOL))
        hits = torch.nonzero(close).flatten()
        if hits.numel():
            free[hits[0]] = False
            matched += 1
            if ref.masks is not None and torch.equal(ref.masks[i], got.masks[hits[0]]):
                same_masks += 1
    return matched, max(len(ref), len(got)), same_masks


def evaluate(model, loader, metrics) -> tuple[list[Instances], dict[str, float], float]:
    """Predictions on every val image, their COCO AP(s) and the model seconds per image."""
    run = run_inference(model, loader, torch.device("cpu"))
    evaluator = build_evaluator(loader.dataset, metrics)
    evaluator.process(run.samples, run.predictions)
    results = evaluator.evaluate()
    aps = {k: float(v) for k, v in results.items() if k.endswith("_mAP")}
    return run.predictions, aps, run.seconds_per_image


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path,
                        default=REPO / "configs/mask_rcnn/mask_rcnn_r18_fpn_synthetic.py")
    parser.add_argument("--work-dir", type=Path, default=REPO / "work_dirs/parity_mask_rcnn_r18")
    parser.add_argument("--epochs", type=int, default=2, help="when training is needed")
    parser.add_argument("--train-options", nargs="*", default=[], metavar="KEY=VALUE",
                        help="more --cfg-options for the training run")
    parser.add_argument("--backends", nargs="*", default=list(BACKENDS), choices=list(BACKENDS))
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (one thread: the fast path's Winograd convolutions)")
    parser.add_argument("--winograd-everywhere", action="store_true",
                        help="let every 3x3 conv the fast path marks run Winograd whatever its "
                             "channels and map size (the synthetic images are too small for the "
                             "default thresholds): the numerics of that path on a trained model")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.winograd_everywhere:
        winograd_conv.MIN_CHANNELS = winograd_conv.MIN_PIXELS = 1
    checkpoint = checkpoint_for(args.config, args.work_dir, args.epochs, args.train_options)
    cfg = load_config(args.config)
    loader = build_dataloader(cfg["val_dataloader"], training=False)
    metrics = ["bbox"]  # the parity figures cover masks; box AP says how trained the model is
    plain = init_detector(args.config, checkpoint, "cpu", tta=False, fast=False)
    models = {"fast path": init_detector(args.config, checkpoint, "cpu", tta=False)}
    for name in args.backends:
        models[name] = backend_detector(plain, name)
        print(f"parity check: {models[name].parity.summary()}", flush=True)
    ref, ref_aps, ref_time = evaluate(plain, loader, metrics)
    count = sum(len(r) for r in ref)
    print(f"{args.config.name}, {checkpoint} ({len(ref)} val images, {count} plain detections "
          f"at score_thr {final_head(plain).score_thr}): plain AP {ref_aps}, "
          f"{ref_time * 1000:.0f} ms/image", flush=True)
    for name, model in models.items():
        preds, aps, seconds = evaluate(model, loader, metrics)
        counts = [identical_counts(r, p) for r, p in zip(ref, preds)]
        matched, total, masks = (sum(c[k] for c in counts) for k in range(3))
        line = (f"{name}: {matched / max(total, 1):.2%} identical detections ({matched} of "
                f"{total})")
        if ref and ref[0].masks is not None:
            line += f", {masks / max(matched, 1):.2%} of their masks identical"
        print(f"{line}; AP {aps}, {seconds * 1000:.0f} ms/image", flush=True)


if __name__ == "__main__":
    main()
