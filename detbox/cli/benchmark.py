"""``detbox benchmark CONFIG [CHECKPOINT]``: inference speed and memory of a detector."""

from __future__ import annotations

import argparse
import json

from detbox.cli.common import (
    add_backend_argument,
    add_config_arguments,
    add_strict_argument,
    backend_device,
    load_config_with_options,
    report_unreadable,
    to_backend,
)
from detbox.cli.flops import add_shape_argument, parse_shape


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "benchmark", help="images/s, latency percentiles, data vs model time, peak memory"
    )
    add_config_arguments(parser)
    parser.add_argument("checkpoint", nargs="?", default=None,
                        help="checkpoint to load (default: random weights)")
    add_shape_argument(parser, (480, 640))
    parser.add_argument("--images", default=None,
                        help="an image, folder or glob to read instead of random --shape images")
    parser.add_argument("--num-images", type=int, default=50, help="images to measure")
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--warmup", type=int, default=2, help="unmeasured batches first")
    parser.add_argument("--num-classes", type=int, default=None,
                        help="classes of the random-weight model when the config leaves "
                             "num_classes to the data (default: 80)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (and the --backend runtime's)")
    add_backend_argument(parser)
    parser.add_argument("--json-out", help="also write the numbers as JSON to this file")
    add_strict_argument(parser, "a file of --images could not be read (it is skipped either "
                        "way)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from detbox.cli.infer import list_inputs
    from detbox.data.skipping import UnreadableFiles
    from detbox.deploy.benchmark import (
        benchmark_detector,
        format_benchmark,
        readable_images,
        synthetic_images,
    )
    from detbox.deploy.model_loading import model_from_config
    from detbox.errors import ConfigError
    from detbox.utils.io import atomic_write_text

    if args.num_images <= 0 or args.batch_size <= 0 or args.warmup < 0:
        raise ConfigError("--num-images and --batch-size must be positive, --warmup >= 0")
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = load_config_with_options(args)
    model = model_from_config(cfg, args.checkpoint, backend_device(args, cfg), args.num_classes)
    model = to_backend(model, args)
    unreadable = UnreadableFiles()
    if args.images:
        listed = list_inputs(args.images)
        images = readable_images(listed, unreadable)
        unreadable.check_some_read(len(listed))
        source = f"{len(images)} images from {args.images}"
    else:
        shape = parse_shape(args.shape)
        images = synthetic_images(min(args.num_images, 8), shape)
        source = f"random {shape[0]}x{shape[1]} images"
    name = type(getattr(model, "detector", model)).__name__
    print(f"benchmarking {name} ({args.backend}) on {source} "
          f"({'checkpoint ' + args.checkpoint if args.checkpoint else 'random weights'}, "
          f"{torch.get_num_threads()} CPU threads)")
    result = benchmark_detector(model, images, args.num_images, args.batch_size, args.warmup)
    print(format_benchmark(result))
    if args.json_out:
        atomic_write_text(args.json_out, json.dumps(result.to_dict(), indent=1) + "\n")
        print(f"numbers written to {args.json_out}")
    return report_unreadable(unreadable, len(images) + len(unreadable), args.strict)
