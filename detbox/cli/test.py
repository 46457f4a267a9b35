"""``detbox test CONFIG CHECKPOINT``: evaluate a trained detector on the test split."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from detbox.cli.common import (
    add_backend_argument,
    add_config_arguments,
    add_strict_argument,
    backend_device,
    load_config_with_options,
    report_unreadable,
    to_backend,
)
from detbox.cli.train import add_launcher_argument
from detbox.errors import ConfigError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("test", help="evaluate a checkpoint on the test split")
    add_config_arguments(parser)
    parser.add_argument("checkpoint", help="checkpoint file (.pth)")
    parser.add_argument(
        "--eval", nargs="+", default=None,
        choices=["bbox", "segm", "proposal", "voc", "voc07", "mAP", "recall"],
        help="metrics to compute (default: the config's evaluation.metric)",
    )
    parser.add_argument(
        "--out",
        help="write COCO-format results: a path ending in .json gets one JSON list (boxes with "
             "their masks); any other path is a prefix for one file per task, as the COCO test "
             "server takes them: PREFIX.bbox.json, PREFIX.segm.json (mask models) or "
             "PREFIX.proposal.json (proposal evaluation)")
    parser.add_argument(
        "--out-proposals", metavar="FILE",
        help="write each image's predicted boxes and scores (an RPN's proposals, in original "
             "image pixels) to this file, for LoadProposals / Fast R-CNN",
    )
    parser.add_argument(
        "--format-only", action="store_true",
        help="only write --out / --out-proposals, without evaluating (for splits without "
             "annotations)",
    )
    parser.add_argument("--json-out", help="write the metrics as JSON to this file")
    parser.add_argument("--plots", metavar="DIR",
                        help="save per-class precision-recall curves and a confusion matrix "
                             "(PNG) in this folder")
    parser.add_argument("--work-dir", help="unused by test; accepted for symmetry with train")
    add_launcher_argument(parser)
    parser.add_argument("--tta", action="store_true",
                        help="test-time augmentation: the config's tta section (multi-scale + "
                             "flip, merged), or a flip at the test scale when it has none")
    add_strict_argument(parser, "an image of the test split could not be read (it is left "
                        "out of the predictions and the evaluation either way)")
    parser.add_argument("--no-fast", action="store_true",
                        help="run the plain model, not the inference fast path (folded BN, "
                             "channels-last, fused conv+ReLU)")
    add_backend_argument(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from detbox.apis.evaluate import build_evaluator, gather_inference, run_inference
    from detbox.apis.tta import describe_tta, tta_settings, tta_test_section, wrap_for_tta
    from detbox.data import build_dataloader
    from detbox.engine import get_rank, get_world_size
    from detbox.utils.io import atomic_write_text

    if args.format_only and not (args.out or args.out_proposals):
        raise ConfigError("--format-only needs --out FILE (or --out-proposals FILE) to write "
                          "the results to")
    cfg = load_config_with_options(args)
    device = start_test_processes(args, cfg)
    shard = {"rank": get_rank(), "world_size": get_world_size()}
    section = evaluation_section(cfg, args.config)
    tta = tta_settings(cfg, True if args.tta else None)
    if tta:
        section = tta_test_section(section, tta)
    loader = build_dataloader(section, seed=int(cfg.get("seed", 0)), training=False, **shard)
    model = load_test_model(cfg, args, device, loader.dataset)
    if tta:
        model = wrap_for_tta(model, tta)
        print(f"test-time augmentation: {describe_tta(tta)}")
    run_ = gather_inference(run_inference(model, loader, device, progress=shard["rank"] == 0))
    if run_ is None:
        return 0
    unreadable = _unreadable(run_)
    total = len(run_.samples) + len(unreadable)
    print(f"inference: {len(run_.samples)} images, "
          f"{run_.seconds_per_image * 1000:.1f} ms per image (model time on {device})")
    metrics = args.eval or (cfg.get("evaluation") or {}).get("metric", ["bbox"])
    metrics = [metrics] if isinstance(metrics, str) else list(metrics)
    if args.out:
        _write_out(args.out, run_, model.dataset_meta["cat_ids"], metrics)
    if args.out_proposals:
        _write_proposals(args.out_proposals, run_)
    if args.format_only:
        return report_unreadable(unreadable, total, args.strict)
    evaluator = build_evaluator(loader.dataset, metrics,
                                backend=(cfg.get("evaluation") or {}).get("backend"))
    evaluator.process(run_.samples, run_.predictions)
    results = evaluator.evaluate()
    print(evaluator.report())
    if unreadable:
        print(f"evaluation covered {len(run_.samples)} of {total} images "
              f"({len(unreadable)} could not be read)")
    if args.json_out:
        atomic_write_text(Path(args.json_out), json.dumps(results, indent=2, default=float) + "\n")
    if args.plots:
        from detbox.analysis.eval_plots import save_eval_plots

        written = save_eval_plots(loader.dataset, run_.samples, run_.predictions, args.plots)
        print(f"plots written: {', '.join(str(p) for p in written)}")
    return report_unreadable(unreadable, total, args.strict)


def _write_out(out: str, run, cat_ids, metrics: list[str]) -> None:
    """``--out``: the predictions as one COCO results file (a ``.json`` path), or otherwise as
    one results file per task named after the ``out`` prefix (``_write_task_results``)."""
    from detbox.evaluation import instances_to_coco_results, write_results

    results = [r for s, p in zip(run.samples, run.predictions)
               for r in instances_to_coco_results(s.image_id, p, cat_ids)]
    if str(out).endswith(".json"):
        write_results(out, results)
        print(f"wrote {len(results)} results to {out}")
    else:
        _write_task_results(out, results, metrics, cat_ids)


def start_test_processes(args: argparse.Namespace, cfg):
    """The device of this process; with ``--launcher``, the process group is started (each
    process then predicts its shard, and rank 0 gathers, writes and evaluates)."""
    from detbox.engine import init_distributed

    device = init_distributed(args.launcher, "cpu" if args.backend != "pytorch"
                              else args.device or cfg.get("device"))
    if args.backend != "pytorch":
        backend_device(args, cfg)  # an explicit GPU --device is an error
    return device


def evaluation_section(cfg, config: str) -> dict:
    """The config's test data loader section (its validation one when it has none)."""
    section = cfg.get("test_dataloader") or cfg.get("val_dataloader")
    if not section:
        raise ConfigError(f"{config}: no test_dataloader (or val_dataloader) to test on")
    return section


def load_test_model(cfg, args: argparse.Namespace, device, dataset):
    """The checkpoint's detector for inference: on ``--backend``, else on the fast path
    unless ``--no-fast``."""
    from detbox.apis.inference import load_detector
    from detbox.models.inference_mode import prepare_for_inference

    model = load_detector(cfg, args.checkpoint, device, dataset=dataset)
    if args.backend != "pytorch":
        return to_backend(model, args)
    if not args.no_fast:
        prepare_for_inference(model)
    return model


def _write_task_results(prefix: str, results: list, metrics: list, cat_ids) -> None:
    """One COCO results file per task; proposals when only proposals are evaluated."""
    from detbox.evaluation.task_results import write_task_results

    proposals = "proposal" in metrics and not {"bbox", "segm"} & set(metrics)
    paths = write_task_results(prefix, results, proposals=proposals,
                               proposal_cat_id=int(cat_ids[0]))
    for task, path in paths.items():
        print(f"wrote {task} results to {path}")


def _write_proposals(path: str, run_) -> None:
    from detbox.data.proposals import save_proposals

    count = save_proposals(path, ((s.file_name, p.boxes, p.scores)
                                  for s, p in zip(run_.samples, run_.predictions)))
    boxes = sum(len(p) for p in run_.predictions)
    print(f"wrote {boxes} proposals of {count} images to {path}")


def _unreadable(run_):
    """The run's unreadable images (``UnreadableFiles``), logged; an error when no image
    could be read."""
    from detbox.data.skipping import UnreadableFiles

    unreadable = UnreadableFiles("images")
    for image in run_.skipped:
        unreadable.add(image.path, image.reason, f"{image.path}: cannot read image "
                       f"({image.reason}); left out of the predictions and the evaluation")
    unreadable.check_some_read(len(run_.samples) + len(unreadable))
    return unreadable
