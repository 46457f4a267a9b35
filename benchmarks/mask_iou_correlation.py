"""How well does Mask Scoring R-CNN's predicted mask IoU track the true one?

For every detection on the val split (score above ``--score-thr``), the true IoU is that of its
predicted mask with the best-overlapping ground-truth mask of the same class. Prints Spearman's
rank correlation between predicted and true IoU, and the segm AP ranked by the classification
score alone vs by score x predicted IoU.

    python benchmarks/mask_iou_correlation.py configs/ms_rcnn/ms_rcnn_r18_fpn_synthetic.py \
        work_dirs/ms_rcnn/latest.pth
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch
from pycocotools import mask as mask_util
from scipy.stats import spearmanr

from detbox.apis.evaluate import run_inference
from detbox.apis.inference import load_detector
from detbox.config import load_config
from detbox.data import build_dataloader
from detbox.evaluation import evaluate_coco, instances_to_coco_results


def true_mask_ious(coco, image_id: int, predictions, cat_ids: list[int]) -> np.ndarray:
    """IoU of each predicted mask with the best ground-truth mask of its class (0 if none)."""
    anns = coco.loadAnns(coco.getAnnIds(imgIds=[image_id], iscrowd=False))
    masks = predictions.masks.numpy().astype(np.uint8)
    detections = mask_util.encode(np.asfortranarray(masks.transpose(1, 2, 0)))
    ious = np.zeros(len(predictions))
    for index, label in enumerate(predictions.labels.tolist()):
        same_class = [coco.annToRLE(a) for a in anns if a["category_id"] == cat_ids[label]]
        if same_class:
            overlaps = mask_util.iou([detections[index]], same_class, [0] * len(same_class))
            ious[index] = float(np.max(overlaps))
    return ious


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("config")
    parser.add_argument("checkpoint")
    parser.add_argument("--score-thr", type=float, default=0.3)
    parser.add_argument("--out", help="write the figures as JSON here")
    args = parser.parse_args()

    cfg = load_config(args.config)
    loader = build_dataloader(cfg.val_dataloader, training=False)
    dataset = loader.dataset
    model = load_detector(cfg, args.checkpoint, torch.device("cpu"), dataset=dataset)
    run = run_inference(model, loader, torch.device("cpu"))

    predicted, true, with_iou, without_iou = [], [], [], []
    for sample, instances in zip(run.samples, run.predictions):
        with_iou += instances_to_coco_results(sample.image_id, instances, dataset.cat_ids)
        kept = instances[instances.scores >= args.score_thr]
        if len(kept):
            predicted += kept.mask_iou.tolist()
            true += true_mask_ious(dataset.coco, sample.image_id, kept, dataset.cat_ids).tolist()
    without_iou = [{k: v for k, v in r.items() if k != "mask_score"} for r in with_iou]
    report = {
        "detections": len(predicted),
        "spearman": float(spearmanr(predicted, true).statistic),
        "mean_abs_error": float(np.mean(np.abs(np.array(predicted) - np.array(true)))),
        "segm_mAP_score_x_iou": evaluate_coco(dataset.coco, with_iou, "segm").stats[0],
        "segm_mAP_score_only": evaluate_coco(dataset.coco, without_iou, "segm").stats[0],
    }
    print(json.dumps(report, indent=2))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(report, f, indent=2)


if __name__ == "__main__":
    main()
