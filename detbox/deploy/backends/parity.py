"""Checking a backend against PyTorch: every graph output, then the final detections.

Run on a sample image each time a backend detector is made (``backend_detector``), so that a
graph the runtime computes differently (an unsupported op emulated wrongly, reduced precision)
never reaches a deployment unnoticed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor, nn

from detbox.deploy.backends.detector import BackendDetector
from detbox.deploy.backends.graphs import GraphPart, graph_parts, split_network_outputs
from detbox.deploy.onnx_export import compare_detections, final_head, max_detection_diffs
from detbox.errors import DetboxError
from detbox.models.roi_heads.roi_extractor import boxes_to_rois
from detbox.structures import ImageBatch

__all__ = ["OutputDiff", "ParityCheck", "check_parity", "sample_batch"]

#: A graph output may differ from PyTorch's by ``ATOL + RTOL * max |PyTorch output|``.
ATOL, RTOL = 1e-4, 1e-3
MASK_CHECK_ROIS = 100  # RoIs the mask head graph is compared on (it costs per RoI)


@dataclass(frozen=True)
class OutputDiff:
    """The largest difference of one graph output from PyTorch's."""

    part: str
    output: str
    max_abs: float
    scale: float

    @property
    def tolerance(self) -> float:
        return ATOL + RTOL * self.scale

    @property
    def ok(self) -> bool:
        return bool(np.isfinite(self.max_abs)) and self.max_abs <= self.tolerance


@dataclass
class ParityCheck:
    """A backend against PyTorch on one sample image."""

    backend: str
    detector: str
    input_shape: tuple[int, int]
    outputs: list[OutputDiff]
    num_torch: int
    num_backend: int
    max_box_diff: float
    max_score_diff: float
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems and all(o.ok for o in self.outputs)

    @property
    def worst(self) -> OutputDiff:
        """The output closest to (or furthest over) its tolerance."""
        return max(self.outputs, key=lambda o: o.max_abs / o.tolerance)

    def summary(self) -> str:
        """One line: what was compared and the largest differences."""
        worst = self.worst
        return (f"{self.backend} vs PyTorch ({self.detector}, {self.input_shape[0]}x"
                f"{self.input_shape[1]} sample): {len(self.outputs)} graph outputs, closest "
                f"to its tolerance '{worst.output}' of {worst.part} (|diff| "
                f"{worst.max_abs:.1e} <= {worst.tolerance:.1e}); "
                f"{self.num_backend} vs {self.num_torch} detections, max |box diff| "
                f"{self.max_box_diff:.1e} px, max |score diff| {self.max_score_diff:.1e}")

    def raise_if_failed(self) -> None:
        """A DetboxError naming the first difference beyond tolerance, if any."""
        worst = self.worst
        if not worst.ok:
            raise DetboxError(
                f"{self.backend} differs from PyTorch on {self.detector}: output "
                f"'{worst.output}' of the {worst.part} graph by up to {worst.max_abs:.2e} "
                f"(tolerance {worst.tolerance:.1e}) on a {self.input_shape[0]}x"
                f"{self.input_shape[1]} sample; do not use this backend for this model")
        if self.problems:
            raise DetboxError(
                f"{self.backend} detections differ from PyTorch's on {self.detector} "
                f"({self.input_shape[0]}x{self.input_shape[1]} sample, max |box diff| "
                f"{self.max_box_diff:.2e} px, max |score diff| {self.max_score_diff:.2e}): "
                f"{self.problems[0]}")


def sample_batch(detector: nn.Module, shape: tuple[int, int] = (480, 640)) -> ImageBatch:
    """A seeded synthetic image of ``shape`` through the detector's test pipeline."""
    from detbox.data.inference import prepare_batch
    from detbox.deploy.benchmark import synthetic_images

    return prepare_batch(detector.cfg, synthetic_images(1, shape, seed=0))


def _output_diffs(detector: nn.Module, runner: BackendDetector,
                  batch: ImageBatch) -> list[OutputDiff]:
    """Each graph against its PyTorch module, on the inputs the PyTorch path computes for
    ``batch`` (the RoI heads on the RoI features of PyTorch's own proposals)."""
    parts = {part.name: part for part in graph_parts(detector)}
    network = parts["network"]
    ref = list(network.module(batch.images))
    diffs = _compare(runner, network, ref, runner.run_graph("network", batch.images))
    if not hasattr(detector, "roi_head"):
        return diffs
    feats, cls_logits, box_deltas = split_network_outputs(detector, ref)
    proposals = detector.rpn_head.predict_by_outputs(cls_logits, box_deltas, batch.samples)
    rois = boxes_to_rois([p.boxes for p in proposals])
    roi_head = detector.roi_head
    roi_feats = {"box_head": roi_head.bbox_roi_extractor(feats, rois)}
    if "mask_head" in parts:
        roi_feats["mask_head"] = roi_head.mask_roi_extractor(feats, rois[:MASK_CHECK_ROIS])
    for name, inputs in roi_feats.items():
        if inputs.shape[0]:  # else nothing to compare on
            out = parts[name].module(inputs)
            out = list(out) if isinstance(out, (tuple, list)) else [out]
            diffs += _compare(runner, parts[name], out, runner.run_graph(name, inputs))
    return diffs


def _compare(runner: BackendDetector, part: GraphPart, ref: list[Tensor],
             got: list[Tensor]) -> list[OutputDiff]:
    diffs = []
    for name, a, b in zip(part.output_names, ref, got):
        if a.shape != b.shape:
            raise DetboxError(f"{runner.backend}: output '{name}' of the {part.name} graph "
                              f"has shape {tuple(b.shape)}, PyTorch's {tuple(a.shape)}")
        max_abs = float((a - b).abs().max()) if a.numel() else 0.0
        scale = float(a.abs().max()) if a.numel() else 0.0
        diffs.append(OutputDiff(part.name, name, max_abs, scale))
    return diffs


@torch.no_grad()
def check_parity(detector: nn.Module, runner: BackendDetector,
                 batch: ImageBatch | None = None) -> ParityCheck:
    """Compare ``runner`` (made from ``detector``) with ``detector`` on ``batch`` (default:
    :func:`sample_batch`): each graph output within ``ATOL + RTOL * scale``, and the final
    detections matched one by one (``compare_detections``)."""
    detector = detector.eval()
    batch = sample_batch(detector) if batch is None else batch
    outputs = _output_diffs(detector, runner, batch)
    ref, got = detector.predict(batch)[0], runner.predict(batch)[0]
    box_diff, score_diff = max_detection_diffs(ref, got)
    return ParityCheck(
        backend=runner.backend, detector=type(detector).__name__,
        input_shape=tuple(batch.images.shape[-2:]), outputs=outputs, num_torch=len(ref),
        num_backend=len(got), max_box_diff=box_diff, max_score_diff=score_diff,
        problems=compare_detections(ref, got, float(final_head(detector).score_thr),
                                    runtime=runner.backend),
    )
