"""Training-step speed and peak memory: torchvision vs detbox, R50-FPN Faster R-CNN / RetinaNet.

torchvision's model is built as its builders build a fine-tuning model on an ImageNet backbone
(``resnet50`` with ``FrozenBatchNorm2d``, ``trainable_backbone_layers=3``: stem and layer1
frozen), but with random weights: the builders with ``weights_backbone=None`` would switch to
trainable ``BatchNorm2d`` everywhere, which is not what anyone fine-tunes. Its classes are
80 + 1 (background / unused slot 0), so both sides predict the same number of classes. The
detbox model is ``configs/torchvision/<arch>.py`` (80 classes, FrozenBN, ``frozen_stages=1``,
RPN 256 / RoI 512 samples as torchvision) with torchvision's weights converted into it.

Both sides train on the same seeded batch of two 512 x 682 images (padded to 512 x 704) with a
few GT boxes each, SGD (lr 0.01, momentum 0.9): zero_grad, forward, loss sum, backward, step.
torchvision's step includes its in-model normalization (detbox's happens in the data loader);
detbox's step goes through the engine's ``parse_losses`` (one host copy of the logged values)
and ``GradientStepper``, on the CPU training fast path the trainer sets up (channels-last maps,
oneDNN GEMMs; ``--plain`` also times the model without it). The sides alternate, one step
each per repeat, after a warm-up, and the median is printed. ``--amp`` adds bf16 CPU autocast
columns (both sides under ``torch.autocast('cpu', torch.bfloat16)``).

Peak RSS is measured in one child process per side and model, which builds only that side's
model and runs ``--rss-steps`` steps; its ``VmHWM`` is printed side by side.

    OMP_NUM_THREADS=1 PYTHONPATH=$PWD python benchmarks/bench_train_step.py --threads 1
    PYTHONPATH=$PWD python benchmarks/bench_train_step.py --models retinanet_resnet50_fpn \
        --profile --no-rss
    PYTHONPATH=$PWD python benchmarks/bench_train_step.py --stages --repeats 3
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
import torchvision

REPO = Path(__file__).resolve().parents[1]
ARCHS = ("fasterrcnn_resnet50_fpn", "retinanet_resnet50_fpn")
HEIGHT, WIDTH, NUM_GT = 512, 682, 4
NUM_CLASSES = 80


def torchvision_model(arch: str, min_size: int = HEIGHT) -> torch.nn.Module:
    """torchvision's fine-tuning architecture (frozen stem + layer1, FrozenBN), random weights,
    resizing images to ``min_size`` on the short side."""
    from torchvision.models import resnet50
    from torchvision.models.detection import FasterRCNN, RetinaNet
    from torchvision.models.detection.backbone_utils import _resnet_fpn_extractor
    from torchvision.ops.feature_pyramid_network import LastLevelP6P7
    from torchvision.ops.misc import FrozenBatchNorm2d

    torch.manual_seed(0)
    resnet = resnet50(weights=None, norm_layer=FrozenBatchNorm2d)
    size = {"min_size": min_size, "max_size": 1333}
    if arch.startswith("retinanet"):
        backbone = _resnet_fpn_extractor(resnet, 3, returned_layers=[2, 3, 4],
                                         extra_blocks=LastLevelP6P7(256, 256))
        return RetinaNet(backbone, NUM_CLASSES + 1, **size)
    return FasterRCNN(_resnet_fpn_extractor(resnet, 3), num_classes=NUM_CLASSES + 1, **size)


def detbox_model(arch: str, tv_state: dict | None) -> torch.nn.Module:
    """``configs/torchvision/<arch>.py`` with 80 classes; torchvision's weights when given."""
    from detbox.apis.build import fill_num_classes
    from detbox.config import load_config
    from detbox.models.weight_conversion import convert_torchvision_state_dict
    from detbox.registry import MODELS

    cfg = load_config(REPO / "configs" / "torchvision" / f"{arch}.py")
    fill_num_classes(cfg, [f"class{i}" for i in range(NUM_CLASSES)], source="the benchmark")
    torch.manual_seed(0)
    model = MODELS.build(cfg["model"])
    if tv_state is not None:
        model.load_state_dict(convert_torchvision_state_dict(arch, tv_state), strict=True)
    return model


def synthetic_data(height: int = HEIGHT, width: int = WIDTH
                   ) -> tuple[list[torch.Tensor], list[torch.Tensor], list[torch.Tensor]]:
    """Two seeded (3, height, width) images in [0, 1], (NUM_GT, 4) boxes and detbox labels
    (0..79) per image."""
    gen = torch.Generator().manual_seed(0)
    images, boxes, labels = [], [], []
    for _ in range(2):
        images.append(torch.rand(3, height, width, generator=gen))
        xy = torch.rand(NUM_GT, 2, generator=gen) * torch.tensor([width * 0.7, height * 0.7])
        wh = 32 + torch.rand(NUM_GT, 2, generator=gen) * 160
        boxes.append(torch.cat([xy, (xy + wh).minimum(torch.tensor([width, height]))], dim=1))
        labels.append(torch.randint(0, NUM_CLASSES, (NUM_GT,), generator=gen))
    return images, boxes, labels


def detbox_batch(tv_model: torch.nn.Module, images, boxes, labels):
    """torchvision's own normalization and padding of ``images``, as a detbox ImageBatch."""
    from detbox.structures import DetSample, ImageBatch, Instances

    was_training = tv_model.training
    tv_model.eval()
    with torch.no_grad():
        image_list, _ = tv_model.transform(images)
    tv_model.train(was_training)
    samples = [
        DetSample(image_id=i, file_name=f"synthetic_{i}", ori_shape=tuple(images[i].shape[-2:]),
                  img_shape=tuple(image_list.image_sizes[i]),
                  gt=Instances(boxes=b.clone(), labels=lab.clone()))
        for i, (b, lab) in enumerate(zip(boxes, labels))
    ]
    return ImageBatch(image_list.tensors, samples)


def sgd(model: torch.nn.Module) -> torch.optim.SGD:
    return torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.01,
                           momentum=0.9)


def autocast(amp: bool) -> contextlib.AbstractContextManager:
    return torch.autocast("cpu", dtype=torch.bfloat16) if amp else contextlib.nullcontext()


def torchvision_step(arch: str, amp: bool = False, tv_state_out: dict | None = None):
    """A ``step()`` closure training torchvision's model on the synthetic batch."""
    model = torchvision_model(arch).train()
    if tv_state_out is not None:
        tv_state_out.update(model.state_dict())
    images, boxes, labels = synthetic_data()
    targets = [{"boxes": b, "labels": lab + 1} for b, lab in zip(boxes, labels)]
    optimizer = sgd(model)

    def step() -> float:
        optimizer.zero_grad(set_to_none=True)
        with autocast(amp):
            losses = model(images, targets)
        total = sum(losses.values())
        value = float(total.detach())
        total.backward()
        optimizer.step()
        return value

    return step, weight_reset(model)


def engine_step(model: torch.nn.Module, batch, device: torch.device,
                amp_dtype: torch.dtype | None):
    """A ``step()`` closure training a detbox ``model`` on ``batch`` as the trainer steps it:
    the engine's ``parse_losses`` (one host copy of the logged values) and ``GradientStepper``
    (autocast to ``amp_dtype``, with a loss scaler for fp16); it returns the total loss."""
    from detbox.engine.amp import AmpSettings
    from detbox.engine.gradient_stepper import GradientStepper
    from detbox.engine.training_step import parse_losses

    optimizer = sgd(model)
    settings = AmpSettings(device.type, amp_dtype)
    stepper = GradientStepper(loss_module=model, model=model, optimizer=optimizer,
                              amp=settings)

    def step() -> float:
        optimizer.zero_grad(set_to_none=True)
        with settings.autocast():
            losses = model.loss(batch)
        total, _, values = parse_losses(losses, device)
        logged = values.tolist()
        stepper.backward(total, 1)
        stepper.step()
        return logged[0]

    return step


def detbox_step(arch: str, amp: bool = False, tv_state: dict | None = None, fast: bool = True):
    """A ``step()`` closure training detbox's model (:func:`engine_step`), on the CPU training
    fast path as the trainer sets it up (``fast=False``: the plain model, the trainer's
    ``cpu_fast_path=False``)."""
    from detbox.engine.cpu_training import prepare_cpu_training

    model = detbox_model(arch, tv_state).train()
    prepare_cpu_training(model, torch.device("cpu"), fast)
    images, boxes, labels = synthetic_data()
    batch = detbox_batch(torchvision_model(arch), images, boxes, labels)
    step = engine_step(model, batch, torch.device("cpu"), torch.bfloat16 if amp else None)
    return step, weight_reset(model)


def weight_reset(model: torch.nn.Module):
    """A callable putting back the initial weights (untimed, after each step): from random
    weights, lr 0.01 drives Faster R-CNN to NaN within a few steps, and every timed step
    should see the same, finite inputs to NMS and sampling."""
    initial = {k: v.clone() for k, v in model.state_dict().items()}

    def reset() -> None:
        model.load_state_dict(initial)

    return reset


def time_steps(steps: dict, repeats: int, warmup: int,
               sync=lambda: None) -> dict[str, tuple[float, float]]:
    """Median (wall, process CPU) seconds per step of each ``(step, reset)`` pair, alternating
    one step of each per repeat (``reset`` runs untimed after each; ``sync()`` before and after
    each step, e.g. to wait for a GPU). On a loaded machine the CPU time (this process only) is
    the steadier figure. A step returning a non-finite float loss is an error."""
    times = {name: ([], []) for name in steps}
    for _ in range(warmup):
        for step, reset in steps.values():
            step()
            reset()
    for _ in range(repeats):
        for name, (step, reset) in steps.items():
            sync()
            wall, cpu = time.perf_counter(), time.process_time()
            loss = step()
            sync()
            times[name][0].append(time.perf_counter() - wall)
            times[name][1].append(time.process_time() - cpu)
            reset()
            if isinstance(loss, float) and not math.isfinite(loss):
                raise RuntimeError(f"{name}: non-finite loss {loss}")
    return {name: (statistics.median(w), statistics.median(c)) for name, (w, c) in times.items()}


def speedup(times: dict[str, tuple[float, float]], reference: str, other: str) -> str:
    """How much faster ``other`` steps than ``reference``, wall and CPU: ``'1.20x wall, ...'``."""
    (ref_wall, ref_cpu), (wall, cpu) = times[reference], times[other]
    return f"{ref_wall / wall:.2f}x wall, {ref_cpu / cpu:.2f}x CPU"


def peak_rss_mb() -> float:
    """This process's peak resident set size (VmHWM), MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child_rss(side: str, arch: str, steps: int, amp: bool, threads: int) -> float:
    """Peak RSS (MiB) of a fresh process that builds only ``side``'s model and trains it."""
    cmd = [sys.executable, __file__, "--rss-child", side, "--models", arch,
           "--rss-steps", str(steps), "--threads", str(threads)]
    if amp:
        cmd.append("--amp")
    out = subprocess.run(cmd, check=True, capture_output=True, text=True,
                         env={**__import__("os").environ, "PYTHONPATH": str(REPO)})
    return json.loads(out.stdout.strip().splitlines()[-1])["peak_rss_mb"]


def run_child(side: str, arch: str, steps: int, amp: bool) -> None:
    step, reset = torchvision_step(arch, amp) if side == "torchvision" else detbox_step(arch, amp)
    for _ in range(steps):
        step()
        reset()
    print(json.dumps({"peak_rss_mb": peak_rss_mb()}))


def profile(arch: str, amp: bool, rows: int) -> None:
    for name, (step, reset) in (("detbox", detbox_step(arch, amp)),
                                ("torchvision", torchvision_step(arch, amp))):
        step()
        reset()
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU],
                                    record_shapes=True) as prof:
            step()
        print(f"\n== {arch}, {name}{' (bf16 autocast)' if amp else ''}: by self CPU time ==")
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=rows))


def stage_times(arch: str, repeats: int) -> None:
    """CPU seconds of each stage of one training step (no optimizer step), both sides on the
    same weights and batch, alternating; prints every repeat."""
    import collections

    from detbox.engine.cpu_training import prepare_cpu_training

    tv = torchvision_model(arch).train()
    ours = detbox_model(arch, tv.state_dict()).train()
    prepare_cpu_training(ours, torch.device("cpu"))
    images, boxes, labels = synthetic_data()
    batch = detbox_batch(torchvision_model(arch), images, boxes, labels)
    targets = [{"boxes": b, "labels": lab + 1} for b, lab in zip(boxes, labels)]
    times = collections.defaultdict(list)

    def timed(name, fn):
        start = time.process_time()
        out = fn()
        times[name].append(time.process_time() - start)
        return out

    def tv_losses():
        image_list, tgts = timed("torchvision transform", lambda: tv.transform(images, targets))
        feats = timed("torchvision backbone+FPN", lambda: tv.backbone(image_list.tensors))
        if arch.startswith("retinanet"):
            levels = list(feats.values())
            out = timed("torchvision head forward", lambda: tv.head(levels))
            anchors = tv.anchor_generator(image_list, levels)
            return timed("torchvision head loss", lambda: tv.compute_loss(tgts, out, anchors))
        proposals, rpn = timed("torchvision RPN", lambda: tv.rpn(image_list, feats, tgts))
        _, roi = timed("torchvision RoI head", lambda: tv.roi_heads(
            feats, proposals, image_list.image_sizes, tgts))
        return {**rpn, **roi}

    def detbox_losses():
        feats = timed("detbox backbone+FPN", lambda: ours.extract_feat(batch.images))
        if arch.startswith("retinanet"):
            out = timed("detbox head forward", lambda: ours.bbox_head(feats))
            return timed("detbox head loss",
                         lambda: ours.bbox_head.loss_by_outputs(*out, batch.samples))
        rpn, proposals = timed("detbox RPN", lambda: ours.rpn_head.loss_and_predict(
            feats, batch.samples))
        roi = timed("detbox RoI head", lambda: ours.roi_head.loss(feats, proposals,
                                                                  batch.samples))
        return {**rpn, **roi}

    for _ in range(repeats + 1):
        for side, model, losses_fn in (("torchvision", tv, tv_losses),
                                       ("detbox", ours, detbox_losses)):
            total = sum(losses_fn().values())
            timed(f"{side} backward", total.backward)
            model.zero_grad(set_to_none=True)
    for name, values in times.items():  # the first round is the warm-up
        print(f"{arch} {name:26s} " + " ".join(f"{v:.3f}" for v in values[1:]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=list(ARCHS), choices=ARCHS)
    parser.add_argument("--repeats", type=int, default=5, help="timed steps of each side")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps of each side")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--amp", action="store_true", help="also time bf16 CPU autocast")
    parser.add_argument("--plain", action="store_true",
                        help="also time detbox without its CPU training fast path")
    parser.add_argument("--no-rss", action="store_true", help="skip the peak-RSS children")
    parser.add_argument("--rss-steps", type=int, default=3, help="steps of each RSS child")
    parser.add_argument("--profile", action="store_true", help="print torch.profiler tables")
    parser.add_argument("--profile-rows", type=int, default=25)
    parser.add_argument("--stages", action="store_true",
                        help="print CPU seconds per stage (backbone, heads, backward)")
    parser.add_argument("--rss-child", choices=("torchvision", "detbox"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.rss_child:
        run_child(args.rss_child, args.models[0], args.rss_steps, args.amp)
        return
    print(f"torch {torch.__version__}, torchvision {torchvision.__version__}, "
          f"{torch.get_num_threads()} threads, batch 2 x {HEIGHT}x{WIDTH}, "
          f"{args.warmup} warm-up + median of {args.repeats}")
    for arch in args.models:
        if args.profile:
            profile(arch, args.amp, args.profile_rows)
            continue
        if args.stages:
            stage_times(arch, args.repeats)
            continue
        tv_state: dict = {}
        steps = {"torchvision": torchvision_step(arch, tv_state_out=tv_state),
                 "detbox": detbox_step(arch, tv_state=tv_state)}
        if args.plain:
            steps["detbox plain"] = detbox_step(arch, tv_state=tv_state, fast=False)
        if args.amp:
            steps["torchvision bf16"] = torchvision_step(arch, amp=True)
            steps["detbox bf16"] = detbox_step(arch, amp=True, tv_state=tv_state)
        t = time_steps(steps, args.repeats, args.warmup)
        for name, (wall, cpu) in t.items():
            print(f"{arch} {name}: {wall:.3f} s/step wall, {cpu:.3f} s/step CPU", flush=True)
        print(f"{arch}: detbox vs torchvision {speedup(t, 'torchvision', 'detbox')}", flush=True)
        if args.plain:
            print(f"{arch}: detbox plain (cpu_fast_path=False) vs torchvision "
                  f"{speedup(t, 'torchvision', 'detbox plain')}", flush=True)
        if args.amp:
            print(f"{arch} bf16: detbox vs torchvision "
                  f"{speedup(t, 'torchvision bf16', 'detbox bf16')}; detbox bf16 vs fp32 "
                  f"{speedup(t, 'detbox', 'detbox bf16')}", flush=True)
        if not args.no_rss:
            threads = torch.get_num_threads()
            rss = {side: child_rss(side, arch, args.rss_steps, False, threads)
                   for side in ("torchvision", "detbox")}
            print(f"{arch}: peak RSS torchvision {rss['torchvision']:.0f} MiB, detbox "
                  f"{rss['detbox']:.0f} MiB ({args.rss_steps} steps, fp32)", flush=True)


if __name__ == "__main__":
    main()
