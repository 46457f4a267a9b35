"""``detbox infer CONFIG CHECKPOINT INPUT``: detect objects in an image, a folder or glob of
images, or a video file."""

from __future__ import annotations

import argparse
import glob
import json
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from detbox.cli.common import (
    add_backend_argument,
    add_config_arguments,
    add_strict_argument,
    backend_device,
    load_config_with_options,
    report_unreadable,
    to_backend,
)
from detbox.errors import DetboxError, ImageReadError

if TYPE_CHECKING:
    from detbox.data.skipping import UnreadableFiles

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("infer", help="detect objects in images")
    add_config_arguments(parser)
    parser.add_argument("checkpoint", help="checkpoint file (.pth)")
    parser.add_argument("input", help="an image, a folder of images, a quoted glob "
                        "('photos/**/*.jpg') or a video file (.mp4, .avi, .mov, ...)")
    parser.add_argument("--out", help="write predictions as JSON to this file")
    parser.add_argument("--format", choices=["detbox", "coco"], default="detbox",
                        help="--out layout: detbox (per image/frame records, default) or coco "
                             "(a COCO results list; image_id is the position in the input)")
    parser.add_argument("--score-thr", type=float, default=0.3,
                        help="drop detections scoring below this (default: 0.3)")
    parser.add_argument("--vis-dir", help="save images (or, for a video, <name>.mp4) with the "
                        "detections drawn here")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--tta", action="store_true",
                        help="test-time augmentation: the config's tta section (multi-scale + "
                             "flip, merged), or a flip at the test scale when it has none")
    add_strict_argument(parser, "an input file or video frame could not be read (it is "
                        "skipped either way)")
    parser.add_argument("--no-fast", action="store_true",
                        help="run the plain model, not the inference fast path (folded BN, "
                             "channels-last, fused conv+ReLU)")
    add_backend_argument(parser)
    parser.set_defaults(func=run)


def list_images(source: str | Path) -> list[Path]:
    """The image itself, or the images in a folder (sorted, recursively)."""
    source = Path(source)
    if source.is_file():
        return [source]
    if source.is_dir():
        images = sorted(p for p in source.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        if not images:
            raise DetboxError(f"{source}: no images ({', '.join(IMAGE_SUFFIXES)}) in this folder")
        return images
    raise DetboxError(f"{source}: no such image file or folder")


def list_inputs(source: str | Path) -> list[Path]:
    """Like :func:`list_images`, and a glob pattern (``**`` recurses) selects images too."""
    text = str(source)
    if not Path(text).exists() and any(c in text for c in "*?["):
        images = sorted(Path(p) for p in glob.glob(text, recursive=True)
                        if Path(p).suffix.lower() in IMAGE_SUFFIXES)
        if not images:
            raise DetboxError(
                f"{text}: the pattern matches no images ({', '.join(IMAGE_SUFFIXES)})")
        return images
    return list_images(source)


def picture_names(paths: list[Path]) -> dict[Path, str]:
    """The ``--vis-dir`` file of each input: ``<stem>.png``, or ``<name>.png`` when inputs
    share a stem (``a.jpg``, ``a.webp``), or ``<position>_<name>.png`` when they share a name
    (``x/a.jpg``, ``y/a.jpg``), so that no picture overwrites another."""
    stems = Counter(p.stem for p in paths)
    names = Counter(p.name for p in paths)
    return {p: f"{p.stem}.png" if stems[p.stem] == 1
            else f"{p.name}.png" if names[p.name] == 1 else f"{i:05d}_{p.name}.png"
            for i, p in enumerate(paths)}


def infer_images(model, paths: list[Path], score_thr: float, vis_dir: str | None,
                 batch_size: int = 4, unreadable: UnreadableFiles | None = None
                 ) -> dict[str, Any]:
    """Predict every image and return the ``preds.json`` mapping (path -> record).

    A file that cannot be read is logged, added to ``unreadable`` and left out; the others are
    still predicted. Sizes and drawings come from the upright decode the model saw; no file is
    read twice.
    """
    from tqdm import tqdm
    from tqdm.contrib.logging import logging_redirect_tqdm

    from detbox.apis.inference import iter_predictions
    from detbox.data.skipping import UnreadableFiles
    from detbox.evaluation.prediction_records import prediction_record
    from detbox.visualization import save_visualization

    unreadable = UnreadableFiles() if unreadable is None else unreadable
    names, cat_ids = model.dataset_meta["class_names"], model.dataset_meta["cat_ids"]
    records: dict[str, Any] = {}
    pictures = picture_names(paths)
    results = iter_predictions(model, paths, batch_size, keep_images=True)
    progress = tqdm(zip(paths, results), total=len(paths), desc="infer", unit="image")
    with logging_redirect_tqdm():  # a skipped file's warning on its own line, not in the bar
        for path, prediction in progress:
            if isinstance(prediction, ImageReadError):
                unreadable.add_error(prediction)
                continue
            instances = prediction.instances[prediction.instances.scores >= score_thr]
            if vis_dir:
                save_visualization(prediction.image, instances, names,
                                   Path(vis_dir) / pictures[path], score_thr)
            height, width = prediction.ori_shape
            records[str(path)] = prediction_record(instances, height, width, names, cat_ids)
    return records


def run(args: argparse.Namespace) -> int:
    from detbox.apis.inference import init_detector
    from detbox.apis.tta import maybe_wrap_for_tta
    from detbox.apis.video import VIDEO_SUFFIXES, infer_video
    from detbox.data.skipping import UnreadableFiles
    from detbox.evaluation.prediction_records import records_to_coco_results
    from detbox.utils.io import atomic_write_text

    cfg = load_config_with_options(args)
    source = Path(args.input)
    is_video = source.is_file() and source.suffix.lower() in VIDEO_SUFFIXES
    paths = [] if is_video else list_inputs(args.input)
    tta = True if args.tta else None
    if args.backend == "pytorch":
        model = init_detector(cfg, args.checkpoint, backend_device(args, cfg), tta=tta,
                              fast=not args.no_fast)
    else:
        plain = init_detector(cfg, args.checkpoint, backend_device(args, cfg), tta=False,
                              fast=False)
        model = maybe_wrap_for_tta(to_backend(plain, args), plain.cfg, tta)
    unreadable = UnreadableFiles("frames" if is_video else "files")
    if is_video:
        out_video = Path(args.vis_dir) / f"{source.stem}.mp4" if args.vis_dir else None
        records = infer_video(model, source, args.score_thr, out_video, args.batch_size,
                              unreadable)
    else:
        records = infer_images(model, paths, args.score_thr, args.vis_dir, args.batch_size,
                               unreadable)
    unreadable.check_some_read(len(records) + len(unreadable))
    count = sum(len(r["predictions"]) for r in records.values())
    unit = "frames" if is_video else "images"
    print(f"{count} detections (score >= {args.score_thr}) in {len(records)} {unit}")
    if args.out:
        output = records_to_coco_results(records) if args.format == "coco" else records
        atomic_write_text(args.out, json.dumps(output, indent=1) + "\n")
        print(f"predictions written to {args.out}")
    if args.vis_dir:
        print(f"pictures written to {args.vis_dir}")
    return report_unreadable(unreadable, len(records) + len(unreadable), args.strict)
