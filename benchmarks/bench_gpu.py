"""GPU speed and memory: torchvision vs detbox, R50-FPN detectors on one CUDA device.

**Training** (Faster R-CNN and RetinaNet R50-FPN): the models, weights and seeded batch of
``bench_train_step.py`` (torchvision's fine-tuning architecture with random weights, converted
into detbox's; two 512 x 682 images), SGD, in fp32 and in AMP fp16 (``torch.autocast`` with a
``GradScaler`` on both sides; detbox's step goes through the engine's ``GradientStepper``, as
the trainer runs it). "detbox channels-last" is the same model with its weights stored
channels-last (cuDNN's NHWC kernels), a candidate for the trainer's GPU default.

**Inference** (Faster / Mask / RetinaNet R50-FPN at ``--size`` px, batch 1): the converted models
and image of ``bench_inference.py``: torchvision, detbox plain and detbox's inference fast path
(``prepare_for_inference``: BN folded, channels-last), in fp32 and under fp16 autocast.

The sides alternate, one step (or prediction) each per repeat, after a warm-up; every timing is
bracketed by ``torch.cuda.synchronize()`` and the median is printed. **Peak memory** is the most
memory allocated during one more step of each side (``torch.cuda.max_memory_allocated``) above
what was allocated before it (the resident weights, gradients and optimizer state of all the
models are excluded, so the sides compare). ``--json`` writes every row for the record.

    python benchmarks/bench_gpu.py --json bench_gpu.json
    python benchmarks/bench_gpu.py --device cpu --train-size 128 170 --size 160 \
        --repeats 1 --warmup 0 --models retinanet_resnet50_fpn   # a quick CPU smoke run
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

import torch
import torchvision

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_inference  # noqa: E402
import bench_train_step  # noqa: E402

TRAIN_ARCHS = bench_train_step.ARCHS
INFER_ARCHS = bench_inference.ARCHS
Step = Callable[[], object]
Reset = Callable[[], None]


def no_reset() -> None:
    """Inference leaves nothing to put back."""


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_mib(step: Step, reset: Reset, device: torch.device) -> float | None:
    """MiB allocated at the peak of one ``step()`` above what was allocated before it."""
    if device.type != "cuda":
        return None
    sync(device)
    torch.cuda.reset_peak_memory_stats(device)
    before = torch.cuda.memory_allocated(device)
    step()
    sync(device)
    peak = torch.cuda.max_memory_allocated(device) - before
    reset()
    return peak / 2**20


def time_alternating(steps: dict[str, tuple[Step, Reset]], repeats: int, warmup: int,
                     device: torch.device) -> dict[str, float]:
    """Median wall seconds of each ``(step, reset)``, one of each per repeat, the device
    synchronised around each step (``bench_train_step.time_steps``); ``reset`` runs untimed
    after it (training puts the first weights back: from random weights, a few SGD steps at
    lr 0.01 drive Faster R-CNN to NaN)."""
    times = bench_train_step.time_steps(steps, repeats, warmup, sync=lambda: sync(device))
    return {name: wall for name, (wall, _) in times.items()}


def torchvision_train_step(arch: str, device: torch.device, amp: bool, size: tuple[int, int],
                           tv_state_out: dict) -> tuple[Step, Reset]:
    """One SGD step of torchvision's model; fp16 autocast and a GradScaler with ``amp``."""
    model = bench_train_step.torchvision_model(arch, min_size=size[0]).train()
    tv_state_out.update(model.state_dict())
    model.to(device)
    images, boxes, labels = bench_train_step.synthetic_data(*size)
    images = [image.to(device) for image in images]
    targets = [{"boxes": b.to(device), "labels": (lab + 1).to(device)}
               for b, lab in zip(boxes, labels)]
    optimizer = bench_train_step.sgd(model)
    scaler = torch.amp.GradScaler(device.type, enabled=amp)

    def step() -> float:
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device.type, torch.float16, enabled=amp):
            losses = model(images, targets)
        total = sum(losses.values())
        scaler.scale(total).backward()
        scaler.step(optimizer)
        scaler.update()
        return float(total.detach())

    return step, bench_train_step.weight_reset(model)


def detbox_train_step(arch: str, device: torch.device, amp: bool, size: tuple[int, int],
                      tv_state: dict, channels_last: bool = False) -> tuple[Step, Reset]:
    """One SGD step of the converted detbox model as the trainer steps it (its fp16 loss
    scaler with ``amp``), see ``bench_train_step.engine_step``."""
    model = bench_train_step.detbox_model(arch, tv_state).train().to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    images, boxes, labels = bench_train_step.synthetic_data(*size)
    tv_model = bench_train_step.torchvision_model(arch, min_size=size[0])
    batch = bench_train_step.detbox_batch(tv_model, images, boxes, labels).to(device)
    step = bench_train_step.engine_step(model, batch, device, torch.float16 if amp else None)
    return step, bench_train_step.weight_reset(model)


def bench_training(arch: str, device: torch.device, args: argparse.Namespace) -> list[dict]:
    rows = []
    size = tuple(args.train_size)
    for amp in (False, True) if args.amp else (False,):
        tv_state: dict = {}
        steps = {"torchvision": torchvision_train_step(arch, device, amp, size, tv_state)}
        steps["detbox"] = detbox_train_step(arch, device, amp, size, tv_state)
        steps["detbox channels-last"] = detbox_train_step(arch, device, amp, size, tv_state,
                                                          channels_last=True)
        times = time_alternating(steps, args.repeats, args.warmup, device)
        precision = "fp16 autocast" if amp else "fp32"
        for name, seconds in times.items():
            rows.append({"section": "train", "model": arch, "side": name,
                         "precision": precision, "seconds": seconds,
                         "speedup_vs_torchvision": times["torchvision"] / seconds,
                         "peak_mib": peak_mib(*steps[name], device)})
    return rows


def inference_runs(arch: str, device: torch.device, size: int, amp: bool
                   ) -> dict[str, tuple[Step, Reset]]:
    """torchvision, detbox plain and detbox fast predicting one image on ``device``."""
    tv, plain, fast = bench_inference.build_trio(arch, size, None)
    image = bench_inference.load_image(size)
    batch = bench_inference.make_batch(tv, image).to(device)
    image = image.to(device)
    for model in (tv, plain, fast):
        model.to(device)

    def run(fn: Callable[[], object]) -> tuple[Step, Reset]:
        def step() -> object:
            with torch.inference_mode(), torch.autocast(device.type, torch.float16,
                                                        enabled=amp):
                return fn()
        return step, no_reset

    return {"torchvision": run(lambda: tv([image])),
            "detbox plain": run(lambda: plain.predict(batch)),
            "detbox fast": run(lambda: fast.predict(batch))}


def bench_inference_speed(arch: str, device: torch.device, args: argparse.Namespace
                          ) -> list[dict]:
    rows = []
    for amp in (False, True) if args.amp else (False,):
        runs = inference_runs(arch, device, args.size, amp)
        times = time_alternating(runs, args.repeats, args.warmup, device)
        precision = "fp16 autocast" if amp else "fp32"
        for name, seconds in times.items():
            rows.append({"section": "inference", "model": arch, "side": name,
                         "precision": precision, "seconds": seconds, "fps": 1.0 / seconds,
                         "speedup_vs_torchvision": times["torchvision"] / seconds,
                         "peak_mib": peak_mib(*runs[name], device)})
    return rows


def print_row(row: dict) -> None:
    peak = "-" if row["peak_mib"] is None else f"{row['peak_mib']:.0f} MiB"
    rate = f", {row['fps']:.1f} img/s" if "fps" in row else ""
    print(f"{row['section']:9s} {row['model']:26s} {row['precision']:13s} {row['side']:21s} "
          f"{row['seconds'] * 1e3:8.1f} ms{rate}  x{row['speedup_vs_torchvision']:.2f}  "
          f"peak {peak}", flush=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda", help="cuda, cuda:N (or cpu for a smoke run)")
    parser.add_argument("--models", nargs="+", default=list(INFER_ARCHS), choices=INFER_ARCHS,
                        help="inference models; the training rows take those of them that "
                             "bench_train_step.py trains")
    parser.add_argument("--size", type=int, default=800, help="inference short side (px)")
    parser.add_argument("--train-size", type=int, nargs=2, metavar=("H", "W"),
                        default=(bench_train_step.HEIGHT, bench_train_step.WIDTH))
    parser.add_argument("--repeats", type=int, default=20, help="timed runs of each side")
    parser.add_argument("--warmup", type=int, default=5, help="untimed runs of each side")
    parser.add_argument("--no-amp", dest="amp", action="store_false",
                        help="skip the fp16 autocast rows")
    parser.add_argument("--skip-train", action="store_true")
    parser.add_argument("--skip-inference", action="store_true")
    parser.add_argument("--json", type=Path, help="write every row to this file")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("bench_gpu: no CUDA device here (use --device cpu for a smoke run)",
              file=sys.stderr)
        return 2
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"torch {torch.__version__}, torchvision {torchvision.__version__}, {name}, "
          f"{args.warmup} warm-up + median of {args.repeats}", flush=True)
    torch.backends.cudnn.benchmark = True
    rows: list[dict] = []
    for arch in args.models:
        sections = []
        if not args.skip_train and arch in TRAIN_ARCHS:
            sections.append(bench_training)
        if not args.skip_inference:
            sections.append(bench_inference_speed)
        for section in sections:
            for row in section(arch, device, args):
                print_row(row)
                rows.append(row)
            if args.json:  # after each section, so that a run cut short keeps what it measured
                args.json.write_text(json.dumps({"device": name, "torch": torch.__version__,
                                                 "torchvision": torchvision.__version__,
                                                 "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
