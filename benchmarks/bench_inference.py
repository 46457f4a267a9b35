"""Inference speed: torchvision vs detbox (plain) vs detbox (fast path) vs the exported
backends (``--backends onnxruntime openvino``), side by side.

Each model is torchvision's ``<arch>`` with random weights (``weights=None,
weights_backbone=None``, seeded), converted into the detbox model of
``configs/torchvision/<arch>.py``. All three run on the same preprocessed image (a Penn-Fudan
image from ``../shared/data`` resized to ``--size`` px on the short side, or a seeded synthetic
image without it), alternating one run of each per repeat in one process; the median of each is
printed with the ratios. Timing uses the configs' score thresholds.

Parity is then checked with a score threshold of 0 (random weights give no detection above the
usual 0.05): the fraction of detections that are identical (same label, box corners within
0.01 px, score within 1e-4) between the fast and the plain path, and between detbox's plain path
and torchvision, and between each backend and the plain path (the backend detectors are made
from the plain model, so their parity check against PyTorch runs first).

    PYTHONPATH=$PWD python benchmarks/bench_inference.py --repeats 5 --size 800
    PYTHONPATH=$PWD python benchmarks/bench_inference.py --backends onnxruntime openvino
    PYTHONPATH=$PWD python benchmarks/bench_inference.py --models retinanet_resnet50_fpn --profile
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
from pathlib import Path

import numpy as np
import torch
import torchvision
from PIL import Image

from detbox.apis.build import fill_num_classes
from detbox.config import load_config
from detbox.deploy.backends import BACKENDS, backend_detector
from detbox.deploy.onnx_export import final_score_thr
from detbox.models.inference_mode import prepare_for_inference
from detbox.models.weight_conversion import convert_torchvision_state_dict
from detbox.models.weight_conversion.coco_classes import (
    torchvision_coco_categories,
    unused_torchvision_slots,
)
from detbox.registry import MODELS
from detbox.structures import DetSample, ImageBatch, Instances

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs" / "torchvision"
PENNFUDAN = REPO.parent / "shared" / "data" / "pennfudan" / "images" / "FudanPed00005.png"
ARCHS = ("fasterrcnn_resnet50_fpn", "maskrcnn_resnet50_fpn", "retinanet_resnet50_fpn")
BOX_TOL, SCORE_TOL = 0.01, 1e-4


def load_image(size: int) -> torch.Tensor:
    """(3, H, W) float image in [0, 1]: Penn-Fudan if present, else seeded noise, short side
    resized to ``size`` x ``4/3 size``."""
    if PENNFUDAN.is_file():
        array = np.asarray(Image.open(PENNFUDAN).convert("RGB"), dtype=np.float32) / 255.0
        image = torch.from_numpy(array).permute(2, 0, 1)
    else:
        image = torch.rand(3, 480, 640, generator=torch.Generator().manual_seed(0))
    shape = (size, round(size * 4 / 3))  # 800 -> 800 x 1067, the usual COCO-like aspect
    return torch.nn.functional.interpolate(image[None], size=shape, mode="bilinear",
                                           align_corners=False)[0].clamp(0, 1)


def torchvision_model(arch: str, size: int, score_thr: float | None) -> torch.nn.Module:
    torch.manual_seed(0)
    options = {}
    if score_thr is not None:
        key = "score_thresh" if arch.startswith("retinanet") else "box_score_thresh"
        options[key] = score_thr
    builder = getattr(torchvision.models.detection, arch)
    model = builder(weights=None, weights_backbone=None, min_size=size,
                    max_size=max(1333, 2 * size), **options)
    # A trained torchvision COCO model never predicts its ten unused ``N/A`` slots (nor, for
    # RetinaNet, its background output); random weights would, so they are silenced here, as
    # the converted 80-class detbox model does not have them.
    unused = unused_torchvision_slots()
    with torch.no_grad():
        if arch.startswith("retinanet"):
            model.head.classification_head.cls_logits.bias.view(9, -1)[:, unused] = -1e4
        else:
            model.roi_heads.box_predictor.cls_score.bias[unused[1:]] = -1e4
    return model.eval()


def detbox_model(arch: str, state_dict: dict, score_thr: float | None) -> torch.nn.Module:
    """The converted model with COCO's 80 classes, as ``detbox convert-weights`` writes it."""
    cfg = load_config(CONFIGS / f"{arch}.py")
    names, cat_ids = torchvision_coco_categories()
    fill_num_classes(cfg, names, source="torchvision's COCO categories")
    model_cfg = cfg["model"]
    if score_thr is not None:
        head = (model_cfg["bbox_head"] if arch.startswith("retinanet")
                else model_cfg["roi_head"]["bbox_head"])
        head["score_thr"] = score_thr
    model = MODELS.build(model_cfg).eval()
    converted = convert_torchvision_state_dict(arch, state_dict, class_ids=cat_ids)
    model.load_state_dict(converted, strict=True)
    model.cfg = cfg  # its test pipeline: what a backend's parity check prepares its sample with
    model.dataset_meta = {"class_names": list(names), "cat_ids": list(cat_ids)}
    return model


def make_batch(tv_model: torch.nn.Module, image: torch.Tensor) -> ImageBatch:
    """torchvision's own preprocessing of ``image``, as a detbox batch."""
    with torch.no_grad():
        image_list, _ = tv_model.transform([image])
    (h, w), (new_h, new_w) = image.shape[-2:], image_list.image_sizes[0]
    sample = DetSample(image_id=0, file_name="bench", ori_shape=(h, w), img_shape=(new_h, new_w),
                       scale_factor=(new_w / w, new_h / h))
    return ImageBatch(image_list.tensors, [sample])


def build_trio(arch: str, size: int, score_thr: float | None):
    tv = torchvision_model(arch, size, score_thr)
    plain = detbox_model(arch, tv.state_dict(), score_thr)
    fast = prepare_for_inference(copy.deepcopy(plain))
    return tv, plain, fast


def match_fraction(ref_boxes, ref_labels, ref_scores, ours: Instances) -> float:
    """Fraction of the reference detections with an identical, not yet matched, detbox one."""
    if len(ref_boxes) == 0:
        return 1.0 if len(ours) == 0 else 0.0
    free = torch.ones(len(ours), dtype=torch.bool)
    matched = 0
    for box, label, score in zip(ref_boxes, ref_labels, ref_scores):
        close = (free & (ours.labels == label)
                 & ((ours.boxes - box).abs().amax(dim=1) <= BOX_TOL)
                 & ((ours.scores - score).abs() <= SCORE_TOL))
        hits = torch.nonzero(close).flatten()
        if hits.numel():
            free[hits[0]] = False
            matched += 1
    return matched / max(len(ref_boxes), len(ours))


def time_models(runs: dict, repeats: int) -> dict[str, float]:
    """Median seconds of each callable, alternating one call of each per repeat."""
    times = {name: [] for name in runs}
    with torch.inference_mode():
        for fn in runs.values():  # warm-up
            fn()
        for _ in range(repeats):
            for name, fn in runs.items():
                start = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def bench_speed(arch: str, image: torch.Tensor, size: int, repeats: int,
                backends: list[str], parity: bool) -> tuple[dict[str, float], dict[str, float]]:
    """Median seconds per model, and each backend's fraction of detections identical to the
    plain path's (score threshold 0; empty without ``parity``)."""
    tv, plain, fast = build_trio(arch, size, None)
    batch = make_batch(tv, image)
    runners = {name: backend_detector(plain, name) for name in backends}
    runs = {"torchvision": lambda: tv([image]), "detbox plain": lambda: plain.predict(batch),
            "detbox fast": lambda: fast.predict(batch)}
    runs.update({name: (lambda r=runner: r.predict(batch)) for name, runner in runners.items()})
    times = time_models(runs, repeats)
    identical = {}
    if parity and runners:
        with final_score_thr(plain, 0.0), torch.inference_mode():  # the runners' too
            ref = plain.predict(batch)[0]
            for name, runner in runners.items():
                identical[name] = match_fraction(ref.boxes, ref.labels, ref.scores,
                                                 runner.predict(batch)[0])
    return times, identical


def bench_parity(arch: str, image: torch.Tensor, size: int) -> tuple[float, float, int]:
    tv, plain, fast = build_trio(arch, size, 0.0)
    batch = make_batch(tv, image)
    with torch.inference_mode():
        expected = tv([image])[0]
        ref = plain.predict(batch)[0]
        ours = fast.predict(batch)[0]
    fast_vs_plain = match_fraction(ref.boxes, ref.labels, ref.scores, ours)
    to_label = {cat_id: label for label, cat_id in enumerate(torchvision_coco_categories()[1])}
    tv_labels = torch.tensor([to_label[int(c)] for c in expected["labels"]], dtype=torch.int64)
    plain_vs_tv = match_fraction(expected["boxes"], tv_labels, expected["scores"],
                                 ref)
    return fast_vs_plain, plain_vs_tv, len(ref)


def profile(arch: str, image: torch.Tensor, size: int, rows: int) -> None:
    _, plain, fast = build_trio(arch, size, None)
    batch = make_batch(torchvision_model(arch, size, None), image)
    for name, model in (("plain", plain), ("fast", fast)):
        with torch.inference_mode():
            model.predict(batch)
            with torch.profiler.profile() as prof:
                model.predict(batch)
        print(f"\n== {arch}, detbox {name} ==")
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=list(ARCHS), choices=ARCHS)
    parser.add_argument("--size", type=int, default=800, help="short side of the image (px)")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs of each model")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--backends", nargs="*", default=[], choices=list(BACKENDS),
                        help="also time these exported backends (detbox post-processing)")
    parser.add_argument("--no-parity", action="store_true", help="skip the parity checks")
    parser.add_argument("--no-torchvision-parity", action="store_true",
                        help="skip only the fast-vs-plain and plain-vs-torchvision check (it "
                             "builds and runs the three models again)")
    parser.add_argument("--profile", action="store_true", help="print torch.profiler tables")
    parser.add_argument("--profile-rows", type=int, default=20)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    image = load_image(args.size)
    print(f"torch {torch.__version__}, torchvision {torchvision.__version__}, "
          f"{torch.get_num_threads()} threads, image {tuple(image.shape[-2:])}, "
          f"{args.repeats} repeats (median)")
    for arch in args.models:
        if args.profile:
            profile(arch, image, args.size, args.profile_rows)
            continue
        t, identical = bench_speed(arch, image, args.size, args.repeats, args.backends,
                                   not args.no_parity)
        line = (f"{arch}: torchvision {t['torchvision']:.3f} s, detbox plain "
                f"{t['detbox plain']:.3f} s, detbox fast {t['detbox fast']:.3f} s; "
                f"fast vs torchvision {t['torchvision'] / t['detbox fast']:.2f}x, "
                f"fast vs plain {t['detbox plain'] / t['detbox fast']:.2f}x")
        for name in args.backends:
            line += (f"; {name} {t[name]:.3f} s ({t['torchvision'] / t[name]:.2f}x "
                     f"torchvision, {t['detbox fast'] / t[name]:.2f}x fast")
            line += f", {identical[name]:.1%} identical to plain)" if name in identical else ")"
        if not (args.no_parity or args.no_torchvision_parity):
            fast_plain, plain_tv, count = bench_parity(arch, image, args.size)
            line += (f"; identical detections (score_thr 0, {count} dets): fast vs plain "
                     f"{fast_plain:.1%}, plain vs torchvision {plain_tv:.1%}")
        print(line, flush=True)


if __name__ == "__main__":
    main()
