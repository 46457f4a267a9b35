"""COCO bbox evaluation speed and memory: pycocotools' COCOeval run directly vs ``detbox eval``.

Generates (seeded, cached in ``--work-dir``) a COCO-like ground truth of ``--images`` images with
about six boxes each over 80 categories, 1% of them crowds, and a results file with
``--dets-per-image`` detections per image (jittered copies of the ground truth, wrong classes and
spurious boxes). Each side then runs in its own fresh process, from reading the two JSON files to
the 12 summary numbers, so that its peak memory (max RSS) is its own; the sides alternate for
``--repeat`` rounds. The 12 numbers must agree within 1e-12. Sides: ``pycocotools`` (COCO,
loadRes, COCOeval run directly), ``detbox`` (``detbox eval`` with its default backend, NumPy),
``faster-coco-eval`` (the library run directly), ``detbox-faster-coco-eval`` and
``detbox-pycocotools`` (``detbox eval --backend ...``); the detbox sides run ``detbox eval``'s
own function, short of writing ``--json-out``.

    python benchmarks/bench_eval.py                       # 5,000 images, 500k detections
    python benchmarks/bench_eval.py --images 500 --dets-per-image 100 --repeat 1
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
NUM_CATEGORIES = 80
SIDES = (
    "pycocotools", "detbox", "faster-coco-eval", "detbox-faster-coco-eval", "detbox-pycocotools"
)


def make_dataset(images: int, dets_per_image: int, seed: int) -> tuple[dict, list[dict]]:
    """A COCO ground truth and a results list, the same for the same arguments."""
    rng = np.random.default_rng(seed)
    image_rows, annotations, results = [], [], []
    for image_id in range(1, images + 1):
        height, width = (int(v) for v in rng.integers(300, 641, size=2))
        image_rows.append({"id": image_id, "width": width, "height": height,
                           "file_name": f"{image_id:06d}.jpg"})
        gt = _random_boxes(rng, int(rng.poisson(6)), width, height, 0.02, 0.6)
        for box, cat in zip(*gt, strict=True):
            annotations.append({
                "id": len(annotations) + 1, "image_id": image_id, "category_id": cat,
                "bbox": box, "area": box[2] * box[3], "iscrowd": int(rng.random() < 0.01),
            })
        for box, cat, score in zip(*_detections(rng, gt, dets_per_image, width, height),
                                   strict=True):
            results.append({"image_id": image_id, "category_id": cat, "bbox": box,
                            "score": score})
    categories = [{"id": c, "name": f"class_{c}"} for c in range(1, NUM_CATEGORIES + 1)]
    return {"images": image_rows, "annotations": annotations, "categories": categories}, results


def _random_boxes(rng, count, width, height, low, high) -> tuple[list[list[float]], list[int]]:
    sizes = rng.uniform(low, high, size=(count, 2)) * [width, height]
    corners = rng.uniform(0, 1, size=(count, 2)) * ([width, height] - sizes)
    boxes = np.round(np.concatenate([corners, sizes], axis=1), 2).tolist()
    return boxes, rng.integers(1, NUM_CATEGORIES + 1, size=count).tolist()


def _detections(rng, gt, count, width, height) -> tuple[list, list, list]:
    """Two noisy copies of every ground-truth box (5% with a wrong class), then spurious boxes."""
    gt_boxes, gt_cats = gt
    copies = min(count, 2 * len(gt_boxes))
    order = np.arange(copies) % max(len(gt_boxes), 1)
    boxes = np.asarray(gt_boxes, dtype=np.float64).reshape(-1, 4)[order]
    noise = rng.normal(0.0, 0.1, size=(copies, 4))
    boxes[:, :2] += noise[:, :2] * boxes[:, 2:]
    boxes[:, 2:] *= np.exp(noise[:, 2:])
    cats = np.asarray(gt_cats, dtype=np.int64)[order]
    wrong = rng.random(copies) < 0.05
    cats[wrong] = rng.integers(1, NUM_CATEGORIES + 1, size=int(wrong.sum()))
    spurious_boxes, spurious_cats = _random_boxes(rng, count - copies, width, height, 0.02, 0.5)
    scores = np.concatenate([rng.uniform(0.3, 1.0, copies), rng.uniform(0.0, 0.6, count - copies)])
    all_boxes = np.round(boxes, 2).tolist() + spurious_boxes
    return all_boxes, cats.tolist() + spurious_cats, np.round(scores, 4).tolist()


def dataset_files(work_dir: Path, images: int, dets_per_image: int, seed: int) -> tuple[Path, Path]:
    """Write the dataset once per (images, dets_per_image, seed) and return its two files."""
    stem = f"bench_{images}img_{dets_per_image}det_seed{seed}"
    gt_path, results_path = work_dir / f"{stem}_gt.json", work_dir / f"{stem}_results.json"
    if not (gt_path.is_file() and results_path.is_file()):
        work_dir.mkdir(parents=True, exist_ok=True)
        gt, results = make_dataset(images, dets_per_image, seed)
        gt_path.write_text(json.dumps(gt))
        results_path.write_text(json.dumps(results))
    return gt_path, results_path


def run_side(side: str, gt_path: str, results_path: str) -> dict:
    """Evaluate in this process; seconds from reading the files to the 12 numbers, and max RSS."""
    start = time.perf_counter()
    if side == "pycocotools":
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval

        with contextlib.redirect_stdout(io.StringIO()):
            coco_gt = COCO(gt_path)
            coco_eval = COCOeval(coco_gt, coco_gt.loadRes(results_path), "bbox")
            coco_eval.evaluate()
            coco_eval.accumulate()
            coco_eval.summarize()
        stats = [float(s) for s in coco_eval.stats]
    elif side == "faster-coco-eval":
        import faster_coco_eval

        coco_gt = faster_coco_eval.COCO(gt_path)
        coco_eval = faster_coco_eval.COCOeval_faster(
            coco_gt, coco_gt.loadRes(results_path), "bbox", print_function=lambda *_: None
        )
        coco_eval.evaluate()
        coco_eval.accumulate()
        coco_eval.summarize()
        stats = [float(s) for s in coco_eval.stats[:12]]
    else:
        from detbox.cli.eval import evaluate_files

        backend = side.removeprefix("detbox-") if side != "detbox" else None
        with contextlib.redirect_stdout(io.StringIO()):
            stats = evaluate_files(gt_path, results_path, ["bbox"], backend=backend)["bbox"].stats
    seconds = time.perf_counter() - start
    max_rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"side": side, "seconds": seconds, "max_rss_mib": max_rss_mib, "stats": stats}


def _in_subprocess(side: str, gt_path: Path, results_path: Path) -> dict:
    command = [sys.executable, __file__, "--worker", side, str(gt_path), str(results_path)]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{side} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--dets-per-image", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=2, help="rounds of the sides, alternating")
    parser.add_argument("--sides", nargs="+", choices=SIDES, default=["pycocotools", "detbox"])
    parser.add_argument("--work-dir", type=Path, default=Path("work_dirs/bench_eval"))
    parser.add_argument("--worker", nargs=3, metavar=("SIDE", "GT", "RESULTS"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(run_side(*args.worker)))
        return 0
    gt_path, results_path = dataset_files(args.work_dir, args.images, args.dets_per_image,
                                          args.seed)
    gt = json.loads(gt_path.read_text())
    print(f"{len(gt['images'])} images, {len(gt['annotations'])} ground-truth boxes, "
          f"{args.images * args.dets_per_image} detections ({results_path})")
    runs: dict[str, list[dict]] = {side: [] for side in args.sides}
    for round_ in range(args.repeat):
        for side in args.sides:
            run = _in_subprocess(side, gt_path, results_path)
            runs[side].append(run)
            print(f"round {round_ + 1}: {side:<19} {run['seconds']:7.2f} s "
                  f"{run['max_rss_mib']:7.0f} MiB")
    return _report(runs)


def _report(runs: dict[str, list[dict]]) -> int:
    reference = runs[next(iter(runs))][0]
    print(f"\n| side | best time (s) | peak RSS (MiB) | time vs {reference['side']} |")
    print("|---|---|---|---|")
    best = {side: min(r["seconds"] for r in rs) for side, rs in runs.items()}
    for side, side_runs in runs.items():
        rss = max(r["max_rss_mib"] for r in side_runs)
        print(f"| {side} | {best[side]:.2f} | {rss:.0f} | "
              f"{best[reference['side']] / best[side]:.1f}x |")
    worst = max(abs(a - b) for rs in runs.values() for r in rs
                for a, b in zip(r["stats"], reference["stats"], strict=True))
    print(f"\nlargest difference of the 12 stats from {reference['side']}: {worst:.3g}")
    print("stats: " + ", ".join(f"{s:.6f}" for s in reference["stats"]))
    if worst > 1e-12:
        print("FAIL: the stats differ")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
