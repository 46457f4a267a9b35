"""Small real datasets on a CPU: torchvision's tutorial recipe against detbox's small-data recipe,
each trained for the same wall-clock budget, both evaluated by pycocotools on the same val split.

torchvision side (its "TorchVision Object Detection Finetuning Tutorial" with an R18-FPN trunk
trained from scratch): ``MaskRCNN`` (Penn-Fudan) or ``FasterRCNN`` (microcontroller) over
``resnet18`` with trainable BatchNorm and all layers trainable (what torchvision's builders
choose without pretrained weights), random horizontal flip, batch 2, SGD lr 0.005 momentum
0.9 weight decay 5e-4, a linear warmup from lr/1000 over epoch 0 (its ``train_one_epoch``),
StepLR every 3 epochs x0.1; epochs run until the budget is spent.
Image sizes: ``--torchvision-sizes matched`` (the default) gives torchvision's transform the
detbox recipe's short sides (one drawn per image in training, the largest at test) and
long-side cap; ``tutorial`` keeps its 800 / 1333 default, which upsamples these small photos
and leaves it a tenth of the iterations.

detbox side: ``configs/small_data/<recipe>.py`` with ``train_cfg.max_time`` set to the budget (the
LR schedule is laid over the budget), then the final checkpoint through ``init_detector``.

Each side runs in its own process with one torch thread and no loader workers; with
``--parallel`` the two run at the same time pinned to separate cores (``taskset``), so both get
one core for the same wall-clock budget. Results: bbox (and segm) AP/AP50 per side and seed, the
mean and the seed-to-seed spread.

    python benchmarks/small_data.py --datasets pennfudan microcontroller --seeds 0 1 \\
        --budget 20m --parallel
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
DATASETS = {
    "pennfudan": {"recipe": "configs/small_data/mask_rcnn_r18_fpn_pennfudan.py", "masks": True,
                  "sizes": (320, 352, 384, 416)},
    "microcontroller": {"recipe": "configs/small_data/faster_rcnn_r18_fpn_microcontroller.py",
                        "masks": False, "sizes": (352, 384, 416, 448)},
}
MAX_SIZE = 640  # the long-side cap of the detbox recipes
SIDES = ("torchvision", "detbox")


def parse_seconds(text: str) -> float:
    from detbox.engine.time_budget import parse_duration

    return parse_duration(text, key="--budget")


# --------------------------------------------------------------------------- evaluation
def coco_eval(gt_file: Path, results: list[dict], iou_type: str) -> dict[str, float]:
    """pycocotools' AP and AP50 of ``results`` (COCO result dicts) on ``gt_file``."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    gt = COCO(str(gt_file))
    if not results:
        return {"AP": 0.0, "AP50": 0.0}
    dt = gt.loadRes(results)
    evaluator = COCOeval(gt, dt, iou_type)
    evaluator.evaluate()
    evaluator.accumulate()
    evaluator.summarize()
    return {"AP": float(evaluator.stats[0]), "AP50": float(evaluator.stats[1])}


def result_dicts(image_id: int, boxes, scores, cat_ids, masks=None) -> list[dict]:
    """COCO result dicts of one image: boxes (N, 4) xyxy, scores (N,), COCO category ids,
    masks (N, H, W) bool or None."""
    import numpy as np
    from pycocotools import mask as mask_utils

    out = []
    for i in range(len(scores)):
        x1, y1, x2, y2 = (float(v) for v in boxes[i])
        item = {"image_id": image_id, "category_id": int(cat_ids[i]),
                "bbox": [x1, y1, x2 - x1, y2 - y1], "score": float(scores[i])}
        if masks is not None:
            rle = mask_utils.encode(np.asfortranarray(masks[i].astype(np.uint8)))
            rle["counts"] = rle["counts"].decode("ascii")
            item["segmentation"] = rle
        out.append(item)
    return out


def evaluate(root: Path, results: list[dict], masks: bool) -> dict[str, float]:
    gt_file = root / "annotations" / "instances_val.json"
    metrics = {f"bbox_{k}": v for k, v in coco_eval(gt_file, results, "bbox").items()}
    if masks:
        metrics.update({f"segm_{k}": v for k, v in coco_eval(gt_file, results, "segm").items()})
    return metrics


# --------------------------------------------------------------------------- torchvision side
class CocoTorchvisionDataset:
    """A COCO JSON split as torchvision's tutorial dataset: (image tensor, target dict)."""

    def __init__(self, root: Path, split: str, train: bool, masks: bool) -> None:
        from pycocotools.coco import COCO

        self.root, self.train, self.masks = root, train, masks
        self.coco = COCO(str(root / "annotations" / f"instances_{split}.json"))
        self.ids = sorted(self.coco.getImgIds())
        if train:  # as the detbox recipes' filter_empty
            self.ids = [i for i in self.ids if self.coco.getAnnIds(imgIds=i, iscrowd=False)]
        cat_ids = sorted(self.coco.getCatIds())
        self.label_of = {c: i + 1 for i, c in enumerate(cat_ids)}  # 0 is background
        self.cat_of = {i + 1: c for i, c in enumerate(cat_ids)}

    def __len__(self) -> int:
        return len(self.ids)

    def image(self, index: int):
        import torchvision.transforms.functional as TF
        from PIL import Image

        info = self.coco.loadImgs(self.ids[index])[0]
        with Image.open(self.root / "images" / info["file_name"]) as pil:
            return TF.pil_to_tensor(pil.convert("RGB")).float() / 255.0

    def __getitem__(self, index: int):
        import numpy as np
        import torch

        image = self.image(index)
        anns = [a for a in self.coco.loadAnns(self.coco.getAnnIds(imgIds=self.ids[index]))
                if not a.get("iscrowd", 0)]
        boxes = torch.tensor([[a["bbox"][0], a["bbox"][1], a["bbox"][0] + a["bbox"][2],
                               a["bbox"][1] + a["bbox"][3]] for a in anns],
                             dtype=torch.float32).reshape(-1, 4)
        target = {"boxes": boxes,
                  "labels": torch.tensor([self.label_of[a["category_id"]] for a in anns],
                                         dtype=torch.int64)}
        if self.masks:
            target["masks"] = torch.from_numpy(
                np.stack([self.coco.annToMask(a) for a in anns])).to(torch.uint8)
        if self.train and torch.rand(()) < 0.5:  # the tutorial's RandomHorizontalFlip(0.5)
            image = image.flip(-1)
            width = image.shape[-1]
            target["boxes"] = torch.stack([width - boxes[:, 2], boxes[:, 1],
                                           width - boxes[:, 0], boxes[:, 3]], dim=1)
            if self.masks:
                target["masks"] = target["masks"].flip(-1)
        return image, target


def torchvision_model(num_classes: int, masks: bool, sizes: tuple[int, ...] | None):
    """torchvision's R50-FPN detector with an R18 trunk, from scratch: trainable BatchNorm and
    every layer trainable, as its builders set up without pretrained weights."""
    from torch import nn
    from torchvision.models import resnet18
    from torchvision.models.detection import FasterRCNN, MaskRCNN
    from torchvision.models.detection.backbone_utils import _resnet_fpn_extractor

    backbone = _resnet_fpn_extractor(resnet18(weights=None, norm_layer=nn.BatchNorm2d), 5)
    size = {} if sizes is None else {"min_size": sizes, "max_size": MAX_SIZE}
    return (MaskRCNN if masks else FasterRCNN)(backbone, num_classes=num_classes, **size)


def run_torchvision(root: Path, masks: bool, budget: float, seed: int,
                    sizes: tuple[int, ...] | None) -> dict:
    import torch

    torch.manual_seed(seed)
    train_set = CocoTorchvisionDataset(root, "train", train=True, masks=masks)
    model = torchvision_model(len(train_set.label_of) + 1, masks, sizes)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=0.005, momentum=0.9, weight_decay=0.0005)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=3, gamma=0.1)
    loader = torch.utils.data.DataLoader(train_set, batch_size=2, shuffle=True, num_workers=0,
                                         collate_fn=lambda batch: tuple(zip(*batch)),
                                         generator=torch.Generator().manual_seed(seed))
    # the tutorial's train_one_epoch: in epoch 0 the lr rises linearly from 1/1000 of its value
    # over min(1000, len(loader) - 1) iterations
    warmup = torch.optim.lr_scheduler.LinearLR(optimizer, start_factor=0.001,
                                               total_iters=min(1000, len(loader) - 1))
    start, iterations, epochs, recent, nonfinite = time.perf_counter(), 0, 0, [], 0
    model.train()
    while time.perf_counter() - start < budget:
        for images, targets in loader:
            losses = model(list(images), list(targets))
            loss = sum(losses.values())
            nonfinite += int(not torch.isfinite(loss))
            recent = [*recent[-19:], float(loss.detach())]
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if epochs == 0:
                warmup.step()
            iterations += 1
            if time.perf_counter() - start >= budget:
                break
        else:
            epochs += 1
            scheduler.step()
    train_seconds = time.perf_counter() - start
    model.eval()
    val_set = CocoTorchvisionDataset(root, "val", train=False, masks=masks)
    results = []
    with torch.inference_mode():
        for index, image_id in enumerate(val_set.ids):
            out = model([val_set.image(index)])[0]
            cats = [val_set.cat_of[int(label)] for label in out["labels"]]
            pasted = (out["masks"][:, 0] >= 0.5).numpy() if masks else None
            results += result_dicts(image_id, out["boxes"].numpy(), out["scores"].numpy(), cats,
                                    pasted)
    return {"iterations": iterations, "epochs": epochs, "train_seconds": train_seconds,
            "last_20_loss": statistics.fmean(recent) if recent else None,
            "nonfinite_loss_steps": nonfinite, "detections": len(results),
            **evaluate(root, results, masks)}


# --------------------------------------------------------------------------- detbox side
def run_detbox(root: Path, recipe: str, masks: bool, budget: float, seed: int,
               work_dir: Path) -> dict:
    import torch

    from detbox.apis.inference import inference_detector, init_detector
    from detbox.apis.training import train_detector
    from detbox.config import ConfigDict, apply_options, load_config

    cfg = ConfigDict(load_config(REPO / recipe))
    data = str(root) + "/"
    apply_options(cfg, {
        "train_cfg.max_time": budget,
        "train_dataloader.dataset.ann_file": data + "annotations/instances_train.json",
        "train_dataloader.dataset.img_dir": data + "images/",
        "val_dataloader.dataset.ann_file": data + "annotations/instances_val.json",
        "val_dataloader.dataset.img_dir": data + "images/",
    })
    start = time.perf_counter()
    train_detector(cfg, work_dir=work_dir, device=torch.device("cpu"), seed=seed)
    train_seconds = time.perf_counter() - start
    records = [json.loads(line) for log in work_dir.glob("*.log.jsonl")
               for line in log.read_text().splitlines() if line.strip()]
    iterations = max((int(r.get("step", 0)) for r in records), default=0)
    model = init_detector(cfg, work_dir / "latest.pth", device="cpu")
    cat_ids = model.dataset_meta["cat_ids"]
    from pycocotools.coco import COCO

    gt = COCO(str(root / "annotations" / "instances_val.json"))
    results = []
    for image_id in sorted(gt.getImgIds()):
        info = gt.loadImgs(image_id)[0]
        det = inference_detector(model, str(root / "images" / info["file_name"]))
        cats = [cat_ids[int(label)] for label in det.labels]
        pasted = det.masks.numpy() if masks and det.masks is not None else None
        results += result_dicts(image_id, det.boxes.numpy(), det.scores.numpy(), cats, pasted)
    return {"iterations": iterations, "train_seconds": train_seconds,
            "detections": len(results), **evaluate(root, results, masks)}


# --------------------------------------------------------------------------- driver
def worker(args: argparse.Namespace) -> None:
    import torch

    torch.set_num_threads(args.threads)
    spec = DATASETS[args.dataset]
    root = Path(args.data_root) / args.dataset
    budget = parse_seconds(args.budget)
    if args.worker == "torchvision":
        sizes = spec["sizes"] if args.torchvision_sizes == "matched" else None
        result = run_torchvision(root, spec["masks"], budget, args.seed, sizes)
    else:
        work_dir = Path(args.work_dir) / f"{args.dataset}_detbox_seed{args.seed}"
        result = run_detbox(root, spec["recipe"], spec["masks"], budget, args.seed, work_dir)
    Path(args.result).write_text(json.dumps(result, indent=1))


def launch(side: str, dataset: str, seed: int, args: argparse.Namespace, core: int | None):
    result = Path(args.work_dir) / f"{dataset}_{side}_seed{seed}.json"
    command = [sys.executable, __file__, "--worker", side, "--dataset", dataset,
               "--seed", str(seed), "--budget", args.budget, "--threads", str(args.threads),
               "--data-root", args.data_root, "--work-dir", args.work_dir,
               "--torchvision-sizes", args.torchvision_sizes,
               "--result", str(result)]
    if core is not None:
        command = ["taskset", "-c", str(core), *command]
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads),
               PYTHONPATH=f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    log = open(Path(args.work_dir) / f"{dataset}_{side}_seed{seed}.log", "w")  # noqa: SIM115
    return subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT), result


def summarize(rows: dict[tuple[str, str], list[dict]]) -> None:
    keys = ("bbox_AP", "bbox_AP50", "segm_AP", "segm_AP50")
    print("| dataset | side | seeds | iterations | " + " | ".join(keys) + " |")
    print("|---|---|---|---|" + "---|" * len(keys))
    for (dataset, side), results in sorted(rows.items()):
        cells = []
        for key in keys:
            values = [r[key] for r in results if key in r]
            if not values:
                cells.append("-")
                continue
            spread = max(values) - min(values)
            cells.append(f"{statistics.mean(values):.3f} (" +
                         ", ".join(f"{v:.3f}" for v in values) + f"; spread {spread:.3f})")
        iters = ", ".join(str(r["iterations"]) for r in results)
        print(f"| {dataset} | {side} | {len(results)} | {iters} | " + " | ".join(cells) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    parser.add_argument("--sides", nargs="+", default=list(SIDES), choices=SIDES)
    parser.add_argument("--budget", default="20m", help="training wall-clock budget per run")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run")
    parser.add_argument("--parallel", action="store_true",
                        help="run the sides of a seed at once, each pinned to its own core")
    parser.add_argument("--torchvision-sizes", choices=("matched", "tutorial"), default="matched",
                        help="torchvision's image sizes: the detbox recipe's, or its 800 px")
    parser.add_argument("--data-root", default=str(SHARED))
    parser.add_argument("--work-dir", default=str(REPO / "work_dirs" / "small_data"))
    parser.add_argument("--worker", choices=SIDES, help=argparse.SUPPRESS)
    parser.add_argument("--dataset", choices=list(DATASETS), help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    for dataset in args.datasets:
        if not (Path(args.data_root) / dataset / "annotations").is_dir():
            parser.error(f"{Path(args.data_root) / dataset} is missing (see ../shared/data)")
    Path(args.work_dir).mkdir(parents=True, exist_ok=True)
    rows: dict[tuple[str, str], list[dict]] = {}
    for dataset in args.datasets:
        for seed in args.seeds:
            runs = []
            for core, side in enumerate(args.sides):
                runs.append((side, *launch(side, dataset, seed, args,
                                           core if args.parallel else None)))
                if not args.parallel:
                    runs[-1][1].wait()
            for side, process, result in runs:
                if process.wait() != 0:
                    print(f"{dataset} {side} seed {seed} failed: see {result.with_suffix('.log')}")
                    continue
                rows.setdefault((dataset, side), []).append(json.loads(result.read_text()))
                print(f"{dataset} {side} seed {seed}: {result.read_text()}", flush=True)
    summarize(rows)


if __name__ == "__main__":
    main()
