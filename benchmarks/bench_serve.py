"""Load check of ``detbox serve``: dynamic batching vs one image per model call.

For each mode (``--max-batch 8`` and ``--max-batch 1`` by default) a ``detbox serve`` process
is started on a free 127.0.0.1 port with a small model (the demo's ResNet-18 FPN RetinaNet at
128 px, random weights, saved once into ``--work-dir``). After a warm-up, ``--clients`` threads
each post one image at a time to ``/predict`` for ``--seconds`` (at most ``--max-requests`` in
all). Reported per mode: requests, errors (non-200 answers or failed connections; must be 0),
throughput (images/s), p50 / p95 latency, the server's RSS before and after the load, and the
batch sizes the server ran (from ``/health``).

    python benchmarks/bench_serve.py
    python benchmarks/bench_serve.py --clients 16 --seconds 30 --modes 8 4 1
"""

from __future__ import annotations

import argparse
import io
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
RECIPE = "demo/retinanet_r18_fpn_synthetic"


def make_model(work_dir: Path) -> tuple[Path, Path]:
    """The demo recipe's model with random (seeded) weights: (config, checkpoint)."""
    import torch

    from detbox.apis.build import build_detector, fill_num_classes
    from detbox.config import dump_config, load_config
    from detbox.engine.checkpoint import save_checkpoint

    work_dir.mkdir(parents=True, exist_ok=True)
    config, checkpoint = work_dir / "model.json", work_dir / "model.pth"
    if not checkpoint.is_file():
        cfg = load_config(RECIPE)
        names = ["circle", "square", "triangle"]
        fill_num_classes(cfg, names, source="bench_serve")
        torch.manual_seed(0)
        model = build_detector(cfg.model, names, [1, 2, 3])
        dump_config(cfg, config)
        save_checkpoint(checkpoint, model=model, epoch=0, iteration=0,
                        meta={"class_names": names, "cat_ids": [1, 2, 3]})
    return config, checkpoint


def make_images(count: int, size: tuple[int, int]) -> list[bytes]:
    from PIL import Image

    rng = np.random.default_rng(0)
    images = []
    for _ in range(count):
        buffer = io.BytesIO()
        pixels = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(buffer, "JPEG", quality=90)
        images.append(buffer.getvalue())
    return images


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def start_server(config: Path, checkpoint: Path, max_batch: int, log: Path):
    import httpx

    port = free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    process = subprocess.Popen(
        [sys.executable, "-m", "detbox.cli.main", "serve", str(config), str(checkpoint),
         "--port", str(port), "--device", "cpu", "--max-batch", str(max_batch)],
        env=env, stdout=open(log, "w"), stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"detbox serve exited; see {log}")
        try:
            if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                return process, base
        except httpx.HTTPError:
            time.sleep(0.3)
    process.kill()
    raise RuntimeError(f"detbox serve did not answer within 180 s; see {log}")


def load(base: str, images: list[bytes], clients: int, seconds: float,
         max_requests: int) -> dict:
    """``clients`` threads posting one image per request until time or count runs out."""
    import httpx

    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    counter = iter(range(max_requests))
    stop_at = time.monotonic() + seconds

    def client(index: int) -> None:
        with httpx.Client(timeout=60) as http:
            while time.monotonic() < stop_at:
                with lock:
                    number = next(counter, None)
                if number is None:
                    return
                data = images[(index + number) % len(images)]
                start = time.perf_counter()
                try:
                    response = http.post(f"{base}/predict",
                                         files={"file": ("image.jpg", data, "image/jpeg")})
                    ok = response.status_code == 200
                    problem = None if ok else f"{response.status_code}: {response.text[:200]}"
                except httpx.HTTPError as exc:
                    problem = f"{type(exc).__name__}: {exc}"
                elapsed = time.perf_counter() - start
                with lock:
                    (errors.append(problem) if problem else latencies.append(elapsed))

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - start
    ms = np.array(latencies) * 1000 if latencies else np.array([float("nan")])
    return {"requests": len(latencies) + len(errors), "errors": len(errors),
            "first_errors": errors[:3], "wall_s": round(wall, 2),
            "throughput_img_s": round(len(latencies) / wall, 2),
            "p50_ms": round(float(np.percentile(ms, 50)), 1),
            "p95_ms": round(float(np.percentile(ms, 95)), 1)}


def run_mode(args: argparse.Namespace, config: Path, checkpoint: Path, images: list[bytes],
             max_batch: int) -> dict:
    import httpx

    process, base = start_server(config, checkpoint, max_batch,
                                 args.work_dir / f"serve_batch{max_batch}.log")
    try:
        load(base, images, args.clients, min(3.0, args.seconds), 4 * args.clients)  # warm-up
        before = rss_mb(process.pid)
        batches_before = httpx.get(f"{base}/health").json()["model_calls"]
        result = load(base, images, args.clients, args.seconds, args.max_requests)
        result["rss_before_mb"] = round(before, 1)
        result["rss_after_mb"] = round(rss_mb(process.pid), 1)
        calls = httpx.get(f"{base}/health").json()["model_calls"] - batches_before
        result["model_calls"] = calls
        result["mean_batch"] = round((result["requests"] - result["errors"]) / max(calls, 1), 2)
    finally:
        process.terminate()
        process.wait(timeout=30)
    return {"max_batch": max_batch, **result}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--max-requests", type=int, default=5000)
    parser.add_argument("--modes", type=int, nargs="+", default=[8, 1],
                        help="--max-batch values to compare")
    parser.add_argument("--image-size", type=int, nargs=2, default=[240, 320],
                        metavar=("H", "W"))
    parser.add_argument("--work-dir", type=Path, default=REPO / "work_dirs" / "bench_serve")
    parser.add_argument("--out", type=Path, help="also write the results as JSON here")
    args = parser.parse_args()

    config, checkpoint = make_model(args.work_dir)
    images = make_images(16, tuple(args.image_size))
    rows = [run_mode(args, config, checkpoint, images, mode) for mode in args.modes]
    header = ("max_batch", "requests", "errors", "throughput_img_s", "p50_ms", "p95_ms",
              "mean_batch", "rss_before_mb", "rss_after_mb")
    print(f"{args.clients} clients, {args.seconds:.0f} s per mode, {RECIPE} (random weights), "
          f"{args.image_size[1]}x{args.image_size[0]} JPEGs")
    print("  ".join(f"{h:>16}" for h in header))
    for row in rows:
        print("  ".join(f"{row[h]:>16}" for h in header))
        for problem in row["first_errors"]:
            print(f"  error: {problem}")
    if args.out:
        args.out.write_text(json.dumps(rows, indent=1) + "\n")
    return 1 if any(row["errors"] for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
