"""Running a detector over a dataloader and evaluating its predictions."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import torch
from torch import nn

from detbox.structures import DetSample, ImageBatch, Instances

__all__ = ["InferenceRun", "run_inference", "build_evaluator", "evaluate_detector"]


@dataclass
class InferenceRun:
    """Predictions of one pass over a dataset, with the time the model took."""

    samples: list[DetSample] = field(default_factory=list)
    predictions: list[Instances] = field(default_factory=list)
    model_seconds: float = 0.0

    @property
    def seconds_per_image(self) -> float:
        return self.model_seconds / max(1, len(self.samples))


@torch.no_grad()
def run_inference(
    model: nn.Module, loader: Iterable[ImageBatch], device: torch.device, progress: bool = False
) -> InferenceRun:
    """Predict every batch of ``loader``; predictions are moved to the CPU."""
    was_training = model.training
    model.eval()
    run = InferenceRun()
    batches = loader
    if progress:
        from tqdm import tqdm

        batches = tqdm(loader, desc="inference", unit="batch", dynamic_ncols=True)
    try:
        for batch in batches:
            batch = batch.to(device)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            start = time.perf_counter()
            predictions = model.predict(batch)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            run.model_seconds += time.perf_counter() - start
            run.samples.extend(s.to("cpu") for s in batch.samples)
            run.predictions.extend(p.to("cpu") for p in predictions)
    finally:
        model.train(was_training)
    return run


def build_evaluator(dataset, metrics: Iterable[str], classwise: bool = True):
    """A COCO evaluator over ``dataset``'s own ground truth and label map."""
    from detbox.evaluation import CocoMetric

    return CocoMetric(
        coco_gt=dataset.coco,
        iou_types=tuple(metrics),
        cat_ids=list(dataset.cat_ids),
        class_names=list(dataset.class_names),
        classwise=classwise,
    )


def evaluate_detector(
    model: nn.Module, loader, device: torch.device, metrics: Iterable[str], classwise: bool = True
) -> Mapping[str, float]:
    """Run inference over ``loader`` and return COCO metrics (``bbox_mAP``, ...)."""
    run = run_inference(model, loader, device)
    evaluator = build_evaluator(loader.dataset, metrics, classwise)
    evaluator.process(run.samples, run.predictions)
    return evaluator.evaluate()
