"""``detbox analyze-logs``: plot training curves and summarize training speed from JSON logs."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "analyze-logs", help="plot curves or training time from .log.jsonl files"
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    plot = actions.add_parser("plot-curve", help="plot log keys over iterations / epochs")
    plot.add_argument("logs", nargs="+", help="JSON-lines logs (work_dir/*.log.jsonl)")
    plot.add_argument("--keys", nargs="+", default=["loss"],
                      help="keys to plot, one subplot each (default: loss)")
    plot.add_argument("--legend", nargs="+", default=None, help="one label per log")
    plot.add_argument("--title", default=None)
    plot.add_argument("--out", required=True, help="image file to write (.png, .pdf, .svg)")
    plot.set_defaults(func=run_plot_curve)

    times = actions.add_parser("cal-train-time", help="seconds per iteration, per epoch")
    times.add_argument("logs", nargs="+", help="JSON-lines logs (work_dir/*.log.jsonl)")
    times.add_argument("--include-outliers", action="store_true",
                       help="keep the first record of each epoch (data loader start-up)")
    times.set_defaults(func=run_cal_train_time)


def run_plot_curve(args: argparse.Namespace) -> int:
    from detbox.analysis.log_analysis import collect_curves, plot_curves

    curves = collect_curves(args.logs, args.keys, args.legend)
    for key, series in curves.items():
        for curve in series:
            print(f"{curve.label}: {key}: {len(curve.y)} points over {curve.x_label}s")
    print(f"figure written to {plot_curves(curves, args.out, args.title)}")
    return 0


def run_cal_train_time(args: argparse.Namespace) -> int:
    from detbox.analysis.log_analysis import load_log, train_time_stats

    for path in args.logs:
        stats = train_time_stats(load_log(path), include_outliers=args.include_outliers)
        print(f"----- training time of {path} ({stats.num_records} records)")
        print(f"slowest epoch {stats.slowest_epoch}: "
              f"{stats.epoch_means[stats.slowest_epoch]:.4f} s/iter")
        print(f"fastest epoch {stats.fastest_epoch}: "
              f"{stats.epoch_means[stats.fastest_epoch]:.4f} s/iter")
        print(f"std over epochs: {stats.std:.4f} s/iter")
        print(f"mean iter time: {stats.mean:.4f} s/iter (data loading {stats.data_mean:.4f})")
    return 0
