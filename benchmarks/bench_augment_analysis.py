"""Per-sample time of the CopyPaste and Albu transforms, and the run time of the COCO error
analysis (``detbox analyze-results``) on a COCO-val-sized set.

Transforms: ``--repeat`` samples of 1333 x 800 uint8 images with ``--objects`` rectangular
instance masks each (CopyPaste also gets a source sample with as many objects, scale jitter
0.5-1.5); the median time per sample is printed. Error analysis: a seeded COCO-like ground
truth of ``--images`` images (0-14 boxes each over 80 categories in 10 supercategories) and
detections made from it (jittered copies, dropped boxes, about 2% wrong classes, spurious boxes).

    python benchmarks/bench_augment_analysis.py
    python benchmarks/bench_augment_analysis.py --images 500 --repeat 5
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

import numpy as np
import torch

from detbox.analysis.coco_errors import analyze_errors
from detbox.data.coco import make_coco
from detbox.data.transforms import Albu, CopyPaste


def sample(seed: int, objects: int, height: int = 800, width: int = 1333) -> dict:
    generator = torch.Generator().manual_seed(seed)
    masks = torch.zeros((objects, height, width), dtype=torch.uint8)
    boxes = []
    for i in range(objects):
        x = int(torch.randint(0, width - 200, (1,), generator=generator))
        y = int(torch.randint(0, height - 200, (1,), generator=generator))
        masks[i, y:y + 150, x:x + 180] = 1
        boxes.append([x, y, x + 180, y + 150])
    image = torch.randint(0, 256, (3, height, width), dtype=torch.uint8, generator=generator)
    return {"img": image, "img_shape": (height, width),
            "gt_boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
            "gt_labels": torch.arange(objects), "gt_masks": masks,
            "ignored_boxes": torch.zeros((0, 4))}


def median_ms(transform, samples: list[dict]) -> float:
    times = []
    for results in samples:
        start = time.perf_counter()
        transform(results)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def coco_like(images: int, seed: int = 0) -> tuple[dict, list[dict]]:
    rng = np.random.default_rng(seed)
    cats = [{"id": c, "name": f"c{c}", "supercategory": f"s{(c - 1) // 8}"} for c in range(1, 81)]
    entries, anns, results = [], [], []
    for image_id in range(1, images + 1):
        entries.append({"id": image_id, "width": 640, "height": 480})
        for _ in range(int(rng.integers(0, 15))):
            w, h = rng.uniform(5, 300, 2)
            x, y = rng.uniform(0, 640 - w), rng.uniform(0, 480 - h)
            cat = int(rng.integers(1, 81))
            anns.append({"id": len(anns) + 1, "image_id": image_id, "category_id": cat,
                         "bbox": [x, y, w, h], "area": w * h, "iscrowd": 0})
            if rng.random() < 0.85:
                dx, dy, sw, sh = rng.normal(0, 0.08, 4)
                wrong = rng.random() < 0.02
                results.append({"image_id": image_id,
                                "category_id": int(rng.integers(1, 81)) if wrong else cat,
                                "bbox": [x + dx * w, y + dy * h, w * np.exp(sw), h * np.exp(sh)],
                                "score": float(rng.uniform(0.3, 1.0))})
        for _ in range(int(rng.poisson(10))):
            w, h = rng.uniform(10, 300, 2)
            results.append({"image_id": image_id, "category_id": int(rng.integers(1, 81)),
                            "bbox": [rng.uniform(0, 640 - w), rng.uniform(0, 480 - h), w, h],
                            "score": float(rng.uniform(0.0, 0.7))})
    return {"images": entries, "annotations": anns, "categories": cats}, results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--images", type=int, default=5000)
    args = parser.parse_args()
    random.seed(0)
    copy_paste = CopyPaste(scale_range=(0.5, 1.5))
    pairs = [{**sample(i, args.objects), "mix_results": [sample(1000 + i, args.objects)]}
             for i in range(args.repeat)]
    print(f"CopyPaste, 1333x800, {args.objects}+{args.objects} objects: "
          f"{median_ms(copy_paste, pairs):.0f} ms per sample (median)")
    albu = Albu(transforms=[dict(type="HorizontalFlip", p=1.0),
                            dict(type="RandomBrightnessContrast", p=1.0)])
    samples = [sample(i, args.objects) for i in range(args.repeat)]
    print(f"Albu (HorizontalFlip + RandomBrightnessContrast), 1333x800, {args.objects} "
          f"objects: {median_ms(albu, samples):.0f} ms per sample (median)")
    gt, results = coco_like(args.images)
    coco_gt = make_coco(gt)
    start = time.perf_counter()
    analysis = analyze_errors(coco_gt, results)
    seconds = time.perf_counter() - start
    print(f"error analysis: {len(gt['images'])} images, {len(gt['annotations'])} boxes, "
          f"{len(results)} detections, 80 classes: {seconds:.1f} s")
    print("overall APs: " + ", ".join(f"{k} {v:.3f}" for k, v in analysis.aps().items()))


if __name__ == "__main__":
    main()
