"""``detbox demo``: generate the synthetic data, train a small detector, evaluate, draw results."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from detbox.config import apply_options, load_config, parse_options
from detbox.recipes import config_root

DEMO_CONFIGS = {
    "retinanet": "demo/retinanet_r18_fpn_synthetic.py",
    "mask_rcnn": "mask_rcnn/mask_rcnn_r18_fpn_synthetic.py",
    "ms_rcnn": "ms_rcnn/ms_rcnn_r18_fpn_synthetic.py",
}


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo", help="train and evaluate a small detector on built-in synthetic data"
    )
    parser.add_argument("--out", default="work_dirs/demo", help="output folder")
    parser.add_argument(
        "--model", choices=sorted(DEMO_CONFIGS), default="retinanet",
        help="retinanet (boxes, a few minutes) or mask_rcnn / ms_rcnn (boxes and masks, longer)",
    )
    parser.add_argument("--config", default=None, help="a config instead of --model's")
    parser.add_argument("--cfg-options", nargs="+", default=[], metavar="KEY=VALUE")
    parser.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: auto)")
    parser.add_argument("--num-vis", type=int, default=8, help="val images to draw")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from detbox.apis.inference import load_detector
    from detbox.apis.training import train_detector
    from detbox.cli.infer import infer_images
    from detbox.data import build_dataset
    from detbox.utils.io import atomic_write_text

    start = time.perf_counter()
    cfg = load_config(args.config or config_root() / DEMO_CONFIGS[args.model])
    apply_options(cfg, parse_options(args.cfg_options, context=cfg))
    out = Path(args.out)
    from detbox.utils.device import resolve_device

    device = resolve_device(args.device)
    print(f"detbox demo: training {cfg.model.type} on synthetic shapes ({device}); "
          f"logs and checkpoints go to {out}")
    metrics = train_detector(cfg, work_dir=out, device=device)

    model = load_detector(cfg, out / "latest.pth", device)
    val_set = build_dataset(cfg.val_dataloader.dataset)
    count = min(args.num_vis, len(val_set))
    paths = [Path(val_set.get_record(i)["img_path"]) for i in range(count)]
    vis_dir = out / "vis"
    records = infer_images(model, paths, score_thr=0.3, vis_dir=str(vis_dir))
    atomic_write_text(out / "preds.json", json.dumps(records, indent=1) + "\n")
    atomic_write_text(out / "metrics.json", json.dumps(metrics, indent=2, default=float) + "\n")
    overview = write_overview(model, val_set, count, out / "overview.png")
    curves = write_curves(out, out / "curves.png")

    minutes = (time.perf_counter() - start) / 60
    print(f"\ndetbox demo finished in {minutes:.1f} min")
    print(f"  synthetic data   {Path(val_set.ann_file).parent.parent}")
    for kind in ("bbox", "segm"):
        if f"{kind}_mAP" in metrics:
            print(f"  {kind} AP          {metrics[f'{kind}_mAP']:.3f} "
                  f"(AP50 {metrics[f'{kind}_mAP_50']:.3f}) on {len(val_set)} val images")
    print(f"  checkpoint       {out / 'latest.pth'}")
    print(f"  logs             {out}/*.log, {out}/*.log.jsonl")
    print(f"  metrics          {out / 'metrics.json'}")
    print(f"  predictions      {out / 'preds.json'}")
    print(f"  pictures         {vis_dir}/")
    print(f"  overview         {overview}")
    if curves is not None:
        print(f"  curves           {curves}")
    return 0


def write_overview(model, dataset, count: int, out_file: Path, score_thr: float = 0.3) -> Path:
    """One picture: the first ``count`` images' predictions beside their ground truth."""
    import torch

    from detbox.apis.inference import inference_with_images
    from detbox.structures import Instances
    from detbox.visualization import draw_instances, picture_grid

    names = model.dataset_meta["class_names"]
    paths = [Path(dataset.get_record(i)["img_path"]) for i in range(count)]
    rows = []
    for index, prediction in enumerate(inference_with_images(model, paths)):
        ann = dataset.get_record(index)["ann"]
        truth = Instances(boxes=torch.as_tensor(ann["boxes"]).reshape(-1, 4),
                          labels=torch.as_tensor(ann["labels"]).long())
        rows.append([draw_instances(prediction.image, prediction.instances, names, score_thr,
                                    min_side=384),
                     draw_instances(prediction.image, truth, names, min_side=384)])
    out_file.parent.mkdir(parents=True, exist_ok=True)
    picture_grid(rows, titles=[f"prediction (score >= {score_thr})", "ground truth"]).save(
        out_file)
    return out_file


def write_curves(work_dir: Path, out_file: Path) -> Path | None:
    """Plot the run's loss and AP curves; ``None`` (and a note) without matplotlib."""
    from detbox.analysis.log_analysis import collect_curves, load_log, plot_curves

    try:
        import matplotlib  # noqa: F401
    except ImportError:
        print("matplotlib is not installed, so no curves.png: pip install -e '.[tools]'")
        return None
    log = max(work_dir.glob("*.log.jsonl"), key=lambda path: path.stat().st_mtime)
    found = {key for record in load_log(log) for key in record}
    keys = [key for key in ("loss", "bbox_mAP", "segm_mAP") if key in found]
    plot_curves(collect_curves([log], keys, legend=["demo"]), out_file,
                title="training loss (per iteration) and validation AP (per epoch)")
    return out_file
