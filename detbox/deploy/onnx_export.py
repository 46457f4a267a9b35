"""Export a detector to ONNX (network + decoding + NMS) and check it against PyTorch.

The graph (see :mod:`detbox.deploy.onnx_graphs`) takes one normalized image of any size and
returns final detections, so a deployment only has to resize, normalize and map boxes back.
:func:`verify_onnx` runs onnxruntime and the PyTorch model on the same prepared inputs and
compares their detections one by one; ``detbox export-onnx`` always runs it and fails when
they differ.
"""

from __future__ import annotations

import contextlib
import json
import os
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

import detbox
from detbox.config import config_to_jsonable
from detbox.deploy.onnx_ops import export_opset
from detbox.deploy.onnx_runtime import META_PREFIX, OnnxDetector
from detbox.deploy.onnx_ssd import export_graph
from detbox.errors import ConfigError, DetboxError
from detbox.structures import Instances

__all__ = [
    "ParityReport", "compare_detections", "export_onnx", "final_head", "final_score_thr",
    "max_detection_diffs", "verification_images", "verify_onnx",
]

OPSET = 17  # RoIAlign with half-pixel alignment needs 16; NonMaxSuppression exists since 10


def final_head(model: nn.Module) -> nn.Module:
    """The module whose ``score_thr`` decides the final detections."""
    return model.roi_head.bbox_head if hasattr(model, "roi_head") else model.bbox_head


@contextlib.contextmanager
def final_score_thr(model: nn.Module, value: float) -> Iterator[None]:
    """Temporarily set the final detection threshold of ``model``."""
    head = final_head(model)
    saved = head.score_thr
    head.score_thr = value
    try:
        yield
    finally:
        head.score_thr = saved


def _pipeline_steps(cfg: Any) -> list[dict[str, Any]]:
    section = cfg.get("test_dataloader") or cfg.get("val_dataloader") or {}
    steps = cfg.get("test_pipeline") or section.get("dataset", {}).get("pipeline")
    if not steps:
        raise ConfigError("the config has no test_pipeline (or test_dataloader.dataset.pipeline)")
    return config_to_jsonable([dict(s) for s in steps
                               if s.get("type") not in ("LoadAnnotations", "LoadImage")])


def _metadata(model: nn.Module) -> dict[str, Any]:
    meta = {
        "class_names": model.dataset_meta["class_names"],
        "cat_ids": model.dataset_meta["cat_ids"],
        "score_thr": float(final_head(model).score_thr),
        "test_pipeline": _pipeline_steps(model.cfg),
        "detector": type(model).__name__,
        "version": detbox.__version__,
    }
    mask_head = getattr(getattr(model, "roi_head", None), "mask_head", None)
    if mask_head is not None:
        meta.update(mask_thr=float(mask_head.mask_thr), paste_mode=str(mask_head.paste_mode))
    return meta


def export_onnx(
    model: nn.Module, out_file: str | os.PathLike, shape: tuple[int, int] = (800, 1344),
    opset: int = OPSET,
) -> Path:
    """Trace ``model`` (eval mode, CPU) into ``out_file`` with dynamic height and width.

    Args:
        model: a one-stage detector (RetinaNet, FCOS, ATSS, GFL, FoveaBox) or an FPN two-stage
            detector (Faster / Mask R-CNN) with ``cfg`` and
            ``dataset_meta`` (as ``init_detector`` returns it).
        out_file: the ``.onnx`` file to write.
        shape: (H, W) of the example input the trace runs on; any size works afterwards.
        opset: ONNX opset version (raised to 19 for deformable convolutions).

    Returns:
        The path written; its metadata holds classes, category ids and the test pipeline.
    """
    import onnx

    try:
        graph = export_graph(model).eval()
    except ValueError as exc:
        raise DetboxError(str(exc)) from exc
    opset = export_opset(graph, opset)
    height, width = shape
    images = torch.randn(1, 3, height, width, generator=torch.Generator().manual_seed(0))
    inputs = (images, torch.tensor([height, width], dtype=torch.float32),
              torch.tensor([float(final_head(model).score_thr)]))
    with_mask = getattr(graph, "with_mask", False)
    outputs = ["boxes", "scores", "labels"] + (["mask_probs"] if with_mask else [])
    dynamic = {"images": {2: "height", 3: "width"}, **{name: {0: "num_detections"}
                                                        for name in outputs}}
    out_file = Path(out_file)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the tracer's notes on Python-side values we replaced
        torch.onnx.export(graph, inputs, str(out_file), dynamo=False, opset_version=opset,
                          input_names=["images", "image_size", "score_thr"],
                          output_names=outputs, dynamic_axes=dynamic)
    proto = onnx.load(str(out_file))
    for key, value in _metadata(model).items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = META_PREFIX + key, json.dumps(value)
    onnx.save(proto, str(out_file))
    return out_file


def compare_detections(
    ref: Instances, got: Instances, score_thr: float, box_atol: float = 0.05,
    box_rtol: float = 1e-4, score_atol: float = 1e-3, min_mask_iou: float = 0.97,
    runtime: str = "onnxruntime",
) -> list[str]:
    """Problems found matching ``got`` against the reference ``ref``, one detection at a time.

    Detections scoring within ``score_atol`` of the threshold may fall on either side of it, so
    only the others must find a partner: the same label, a score within ``score_atol``, every
    box coordinate within ``box_atol + box_rtol * |x|`` pixels and, with masks, a mask IoU of
    at least ``min_mask_iou``. ``runtime`` names the side of ``got`` in the problems.
    """
    problems = []
    for name, a, b in (("PyTorch", ref, got), (runtime, got, ref)):
        free = torch.ones(len(b), dtype=torch.bool)
        for i in torch.nonzero(a.scores > score_thr + score_atol).flatten().tolist():
            close = (free & (b.labels == a.labels[i])
                     & ((b.scores - a.scores[i]).abs() <= score_atol)
                     & ((b.boxes - a.boxes[i]).abs() <= box_atol + box_rtol * a.boxes[i].abs())
                     .all(dim=1))
            hits = torch.nonzero(close).flatten()
            if a.masks is not None and b.masks is not None and hits.numel():
                hits = hits[_mask_iou(a.masks[i], b.masks[hits]) >= min_mask_iou]
            if hits.numel():
                free[hits[0]] = False
            else:
                box = [round(v, 2) for v in a.boxes[i].tolist()]
                problems.append(f"{name} detection {i} (label {int(a.labels[i])}, score "
                                f"{float(a.scores[i]):.4f}, box {box}) has no counterpart")
    return problems


def _mask_iou(mask: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    inter = (masks & mask).flatten(1).sum(1).float()
    union = (masks | mask).flatten(1).sum(1).float()
    return torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(union))


@dataclass
class ParityReport:
    """One verification image: what both runtimes found and what did not match."""

    name: str
    input_shape: tuple[int, int]
    num_torch: int
    num_onnx: int
    max_box_diff: float
    max_score_diff: float
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def max_detection_diffs(ref: Instances, got: Instances) -> tuple[float, float]:
    """Largest differences between detections ranked alike (for the report)."""
    n = min(len(ref), len(got))
    if n == 0:
        return 0.0, 0.0
    box = float((ref.boxes[:n] - got.boxes[:n]).abs().max())
    score = float((ref.scores[:n] - got.scores[:n]).abs().max())
    return box, score


@torch.no_grad()
def verify_onnx(
    model: nn.Module, onnx_file: str | os.PathLike, images: Sequence[tuple[str, Any, float | None]],
) -> list[ParityReport]:
    """Compare PyTorch and onnxruntime detections on each ``(name, image, score_thr)``.

    ``score_thr`` None uses the model's own threshold; a threshold of 1.0 checks the path where
    nothing is detected. Images are paths or (H, W, 3) uint8 RGB arrays.
    """
    from detbox.data.inference import prepare_batch

    runtime = OnnxDetector(onnx_file)
    model = model.eval()
    device = next(model.parameters()).device
    reports = []
    for index, (name, image, thr) in enumerate(images):
        batch = prepare_batch(model.cfg, [image], index)
        threshold = runtime.score_thr if thr is None else thr
        with final_score_thr(model, threshold):
            ref = model.predict(batch.to(device))[0].to("cpu")
        got = runtime.predict_batch(batch, threshold)[0]
        box_diff, score_diff = max_detection_diffs(ref, got)
        reports.append(ParityReport(
            name=name, input_shape=tuple(batch.images.shape[-2:]), num_torch=len(ref),
            num_onnx=len(got), max_box_diff=box_diff, max_score_diff=score_diff,
            problems=compare_detections(ref, got, threshold),
        ))
    return reports


def verification_images(shape: tuple[int, int]) -> list[tuple[str, np.ndarray, float | None]]:
    """Random images of three sizes and aspect ratios, and a blank one at threshold 1.0 (no
    detections), derived from ``shape``."""
    from detbox.deploy.benchmark import synthetic_images

    height, width = shape
    sizes = [(height, width), (max(32, height * 3 // 4), width), (height, max(32, width * 2 // 3))]
    items: list[tuple[str, np.ndarray, float | None]] = [
        (f"random {h}x{w}", synthetic_images(1, (h, w), seed=i)[0], None)
        for i, (h, w) in enumerate(sizes)
    ]
    items.append((f"blank {height}x{width} at score_thr 1.0",
                  np.full((height, width, 3), 128, dtype=np.uint8), 1.0))
    return items
