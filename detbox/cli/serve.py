"""``detbox serve CONFIG CHECKPOINT``: the detector behind HTTP, with a page to try it."""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Mapping

from detbox.cli.common import add_config_arguments, load_config_with_options


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "serve", help="serve a detector over HTTP: POST /predict, GET /model, a web page at / "
                      '(pip install "detbox[serve]")')
    add_config_arguments(parser)
    parser.add_argument("checkpoint", help="checkpoint file (.pth)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default: 127.0.0.1, this machine only; "
                             "0.0.0.0 exposes the service to the network)")
    parser.add_argument("--port", type=int, default=8000, help="default: 8000")
    parser.add_argument("--max-batch", type=int, default=8,
                        help="the most images of concurrent requests in one model call")
    parser.add_argument("--max-wait-ms", type=float, default=5.0,
                        help="how long an image waits for others to fill its batch")
    parser.add_argument("--max-image-mb", type=float, default=20.0,
                        help="larger uploads are refused with 413 (default: 20)")
    parser.add_argument("--max-megapixels", type=float, default=40.0,
                        help="images declaring more pixels are refused before decoding")
    parser.add_argument("--max-files", type=int, default=16,
                        help="the most images in one request")
    parser.add_argument("--score-thr", type=float, default=0.3,
                        help="/predict's default score_thr (default: 0.3)")
    parser.add_argument("--workers", type=int, default=1,
                        help="server processes, each with its own copy of the model and its "
                             "own batching (default: 1)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads of each process (default: the machine's share "
                             "of each worker, i.e. torch's default divided by --workers, unless "
                             "OMP_NUM_THREADS is set)")
    parser.add_argument("--no-fast", action="store_true",
                        help="run the plain model, not the inference fast path")
    parser.set_defaults(func=run)


def worker_threads(requested: int | None, workers: int, default: int,
                   environ: Mapping[str, str]) -> int | None:
    """The torch CPU threads one server process should use: ``requested`` (``--threads``);
    else, with several workers and no ``OMP_NUM_THREADS`` in ``environ``, ``default`` (torch's
    own count, one per core) split among the workers, so that N processes do not run N times
    as many threads as there are cores; else None (leave torch's setting). With as many
    workers as cores each runs one thread, where the fast path's Winograd kernels apply."""
    if requested is not None:
        return requested
    if workers > 1 and "OMP_NUM_THREADS" not in environ:
        return max(1, default // workers)
    return None


def build_app(args: argparse.Namespace):
    """The FastAPI app for the parsed arguments (the model loaded)."""
    from detbox.apis.inference import init_detector
    from detbox.serve import require_serve_extra
    from detbox.utils.device import resolve_device

    require_serve_extra()
    import torch

    from detbox.serve.app import create_app

    threads = worker_threads(args.threads, args.workers, torch.get_num_threads(), os.environ)
    if threads is not None:
        torch.set_num_threads(threads)
    cfg = load_config_with_options(args)
    model = init_detector(cfg, args.checkpoint, resolve_device(args.device or cfg.get("device")),
                          tta=False, fast=not args.no_fast)
    return create_app(model, checkpoint=args.checkpoint, score_thr=args.score_thr,
                      max_batch=args.max_batch, max_wait_ms=args.max_wait_ms,
                      max_image_bytes=int(args.max_image_mb * 1024 * 1024),
                      max_pixels=int(args.max_megapixels * 1_000_000), max_files=args.max_files)


# ``--workers N``: uvicorn starts N processes that each build the app from these arguments.
ARGS_ENV = "DETBOX_SERVE_ARGS"


def app_from_env():
    """The app of one ``--workers`` process (a uvicorn factory): arguments from ``ARGS_ENV``."""
    return build_app(argparse.Namespace(**json.loads(os.environ[ARGS_ENV])))


def run(args: argparse.Namespace) -> int:
    from detbox.errors import ConfigError

    if (min(args.max_batch, args.max_files, args.workers,
            1 if args.threads is None else args.threads) < 1
            or args.max_image_mb <= 0):
        raise ConfigError("--max-batch, --max-files, --workers, --threads and --max-image-mb "
                          "must be positive")
    if not 0.0 <= args.score_thr <= 1.0:
        raise ConfigError(f"--score-thr must be in [0, 1], got {args.score_thr}")
    print(f"detbox serve: http://{args.host}:{args.port}/ (API docs at /docs); Ctrl+C stops")
    if args.workers > 1:
        from detbox.serve import require_serve_extra

        require_serve_extra()
        import uvicorn

        settings = {k: v for k, v in vars(args).items() if k != "func"}
        os.environ[ARGS_ENV] = json.dumps(settings)
        uvicorn.run("detbox.cli.serve:app_from_env", factory=True, workers=args.workers,
                    host=args.host, port=args.port, log_level="info")
        return 0
    app = build_app(args)
    import uvicorn

    uvicorn.run(app, host=args.host, port=args.port, log_level="info")
    return 0
