"""``detbox eval``: score a COCO results file against COCO ground truth with COCOeval."""

from __future__ import annotations

import argparse
import json

_PROPOSAL_NUMS = (100, 300, 1000)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``eval`` parser."""
    parser = subparsers.add_parser(
        "eval",
        help="score a COCO results file against COCO ground truth",
        description=(
            "Score a COCO results file (a JSON list of {image_id, category_id, bbox, score"
            "[, segmentation]}) against a COCO ground-truth file with COCOeval, over every "
            "ground-truth image. Prints pycocotools' 12-line summary and a per-class AP table."
        ),
    )
    parser.add_argument("gt", metavar="GT.json", help="COCO ground-truth annotation file")
    parser.add_argument("results", metavar="RESULTS.json", help="COCO results file")
    parser.add_argument(
        "--iou-type", dest="iou_types", action="append", choices=("bbox", "segm", "proposal"),
        help="what to score (repeat for several; default bbox): boxes, masks, or class-agnostic "
        f"box recall at {'/'.join(map(str, _PROPOSAL_NUMS))} results per image",
    )
    parser.add_argument(
        "--backend", choices=("numpy", "faster-coco-eval", "pycocotools"), default=None,
        help="COCOeval implementation (default numpy: boxes in NumPy, masks with "
        "faster-coco-eval, or pycocotools when that is not installed); all give the same "
        "numbers",
    )
    parser.add_argument(
        "--json-out", metavar="FILE",
        help='also write {"<iou_type>": {"stats": [12 numbers], "per_class": {...}}} to FILE',
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Evaluate, print the reports and optionally write them as JSON."""
    iou_types = list(dict.fromkeys(args.iou_types or ["bbox"]))
    results = evaluate_files(args.gt, args.results, iou_types, backend=args.backend)
    if args.json_out:
        # Imported here: the writer lives beside torch checkpoint saving, which loads torch.
        from detbox.utils.io import atomic_write_text

        reports = {iou_type: result.to_dict() for iou_type, result in results.items()}
        atomic_write_text(args.json_out, json.dumps(reports, indent=2) + "\n")
        print(f"metrics written to {args.json_out}")
    return 0


def evaluate_files(
    gt_path: str, results_path: str, iou_types: list[str], backend: str | None = None
) -> dict:
    """Check and score a results file and print one report per type; torch is never imported.

    Returns:
        ``{iou_type: CocoEvalResult}``.
    """
    from detbox.evaluation.coco_scoring import (
        check_gt_supports,
        evaluate_coco,
        gc_paused,
        load_coco_gt,
    )
    from detbox.evaluation.report import format_report
    from detbox.evaluation.results_file import check_results, load_results

    gt_name = f"'{gt_path}'"
    evaluated, columns = {}, {}
    with gc_paused():
        coco_gt = load_coco_gt(gt_path)
        results = load_results(results_path)
        for iou_type in sorted(iou_types, key=("bbox", "proposal", "segm").index):
            check_gt_supports(coco_gt, iou_type, gt_name=f"ground-truth file {gt_name}")
            if iou_type == "proposal" and columns.get("bbox") is not None:
                columns[iou_type] = columns["bbox"]  # what passes for bbox passes for proposal
                continue
            columns[iou_type] = check_results(
                results, coco_gt, iou_type, source=f"results file '{results_path}'",
                gt_name=gt_name,
            )
        for iou_type in iou_types:
            max_dets = _PROPOSAL_NUMS if iou_type == "proposal" else (1, 10, 100)
            evaluated[iou_type] = evaluate_coco(
                coco_gt, results, iou_type, max_dets=max_dets, backend=backend,
                columns=columns[iou_type],
            )
            print(format_report(evaluated[iou_type]), end="\n\n")
        # Freed while the collector is still off: switched back on, its first pass would
        # otherwise walk the millions of objects of the parsed results file once more.
        del results, columns
    return evaluated
