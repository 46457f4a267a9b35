"""Evaluating a detector on a dataset: run it over a data loader, gather the predictions
across processes and score them with the dataset's metrics."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

import torch
from torch import nn

from detbox.structures import DetSample, ImageBatch, Instances

logger = logging.getLogger(__name__)

__all__ = [
    "InferenceRun", "MetricGroup", "VOC_METRICS", "build_evaluator", "evaluate_detector",
    "gather_inference", "run_inference",
]


@dataclass
class InferenceRun:
    """Predictions of one pass over a dataset, with the time the model took.

    ``skipped`` holds the images that could not be read (``UnreadableImage``: path, reason,
    image id); they have no sample or prediction, so evaluation covers the others only.
    """

    samples: list[DetSample] = field(default_factory=list)
    predictions: list[Instances] = field(default_factory=list)
    model_seconds: float = 0.0
    skipped: list = field(default_factory=list)

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
            run.skipped.extend(batch.skipped)
            if not batch.samples:
                continue
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


# Metric names that select Pascal VOC mAP at IoU 0.5, with the AP mode of each.
VOC_METRICS = {"voc": "area", "mAP": "area", "voc07": "11points"}


# Metrics of one dataset's own protocol: the official Cityscapes instance AP and WIDER FACE's
# easy / medium / hard AP.
DATASET_METRICS = ("cityscapes", "wider_face")


def _dataset_metric(name: str, dataset):
    if name == "cityscapes":
        from detbox.evaluation.cityscapes_metric import CityscapesMetric, cityscapes_gt_dir

        return CityscapesMetric(cityscapes_gt_dir(dataset.img_dir), label_ids=dataset.cat_ids,
                                class_names=dataset.class_names)
    from detbox.errors import ConfigError
    from detbox.evaluation.wider_face_metric import WIDERFaceMetric

    gt_dir = getattr(dataset, "eval_gt_dir", None)
    if gt_dir is None:
        raise ConfigError("evaluation.metric 'wider_face' needs a WIDERFaceDataset with "
                          "eval_gt_dir (the folder of wider_face_val.mat and wider_*_val.mat)")
    return WIDERFaceMetric(gt_dir)


class MetricGroup:
    """Several evaluators fed the same predictions; :meth:`evaluate` merges their metrics."""

    def __init__(self, evaluators: list) -> None:
        self.evaluators = list(evaluators)

    def process(self, samples, predictions) -> None:
        for evaluator in self.evaluators:
            evaluator.process(samples, predictions)

    def evaluate(self) -> dict:
        metrics: dict = {}
        for evaluator in self.evaluators:
            metrics.update(evaluator.evaluate())
        return metrics

    def report(self) -> str:
        return "\n\n".join(evaluator.report() for evaluator in self.evaluators)


def build_evaluator(dataset, metrics: Iterable[str], classwise: bool = True,
                    backend: str | None = None):
    """An evaluator over ``dataset``'s own ground truth and label map.

    ``bbox``, ``segm`` and ``proposal`` are COCO metrics; ``voc`` (or ``mAP``) is Pascal VOC
    mAP at IoU 0.5 with all-points AP, ``voc07`` the same with VOC2007's 11-point AP;
    ``cityscapes`` the official Cityscapes instance AP (``CityscapesMetric``), ``wider_face``
    WIDER FACE's easy / medium / hard AP (``WIDERFaceMetric``). ``recall`` is class-agnostic
    recall at 100/300/1000 boxes and IoU 0.5 (``RecallMetric``).
    ``backend`` picks the COCOeval implementation (``evaluation.backend`` of a config).
    """
    from detbox.errors import ConfigError
    from detbox.evaluation import CocoMetric, VOCMetric

    metrics = list(metrics)
    with_recall = "recall" in metrics
    metrics = [m for m in metrics if m != "recall"]
    voc_modes = {VOC_METRICS[m] for m in metrics if m in VOC_METRICS}
    own = [_dataset_metric(m, dataset) for m in metrics if m in DATASET_METRICS]
    coco_types = [m for m in metrics if m not in VOC_METRICS and m not in DATASET_METRICS]
    if len(voc_modes) > 1:
        raise ConfigError("choose one VOC metric: 'voc' (all-points AP) or 'voc07' (11 points)")
    evaluators = []
    if coco_types or not (voc_modes or own or with_recall):
        evaluators.append(CocoMetric(
            coco_gt=dataset.coco,
            iou_types=tuple(coco_types),
            cat_ids=list(dataset.cat_ids),
            class_names=list(dataset.class_names),
            classwise=classwise,
            backend=backend,
        ))
    if voc_modes:
        evaluators.append(VOCMetric(
            mode=voc_modes.pop(), coco_gt=dataset.coco, cat_ids=list(dataset.cat_ids),
            class_names=list(dataset.class_names), classwise=classwise,
        ))
    evaluators += own
    if with_recall:
        from detbox.evaluation.recall import RecallMetric

        evaluators.append(RecallMetric(coco_gt=dataset.coco))
    return evaluators[0] if len(evaluators) == 1 else MetricGroup(evaluators)


def _pack(prediction: Instances) -> tuple[Instances, list | None]:
    """Masks as compressed RLEs for the trip between processes (they are most of the bytes)."""
    from detbox.evaluation import masks_to_rles

    if prediction.masks is None or prediction.masks.is_floating_point():
        return prediction, None
    return replace(prediction, masks=None), masks_to_rles(prediction.masks)


def _unpack(prediction: Instances, rles: list | None, shape: tuple[int, int]) -> Instances:
    if rles is None:
        return prediction
    import pycocotools.mask as mask_utils

    masks = (torch.from_numpy(mask_utils.decode(rles)).permute(2, 0, 1).bool() if rles
             else torch.zeros((0, *shape), dtype=torch.bool))
    return replace(prediction, masks=masks)


def gather_inference(run: InferenceRun) -> InferenceRun | None:
    """Every rank's predictions, in rank order, on rank 0; None on the other ranks.

    With :class:`~detbox.data.samplers.InferenceSampler` shards (contiguous, no padding) the
    result holds each image exactly once, in dataset order. A single process gets ``run`` back.
    """
    from detbox.engine.dist import all_gather_object, get_rank, get_world_size

    if get_world_size() == 1:
        return run
    packed = [_pack(p) for p in run.predictions]
    shapes = [tuple(int(v) for v in s.ori_shape) for s in run.samples]
    parts = all_gather_object((run.samples, packed, shapes, run.model_seconds, run.skipped))
    if get_rank() != 0:
        return None
    merged = InferenceRun()
    for samples, rank_packed, rank_shapes, seconds, skipped in parts:
        merged.samples.extend(samples)
        merged.skipped.extend(skipped)
        merged.predictions.extend(_unpack(p, rles, shape)
                                  for (p, rles), shape in zip(rank_packed, rank_shapes))
        merged.model_seconds += seconds
    return merged


def evaluate_detector(
    model: nn.Module, loader, device: torch.device, metrics: Iterable[str], classwise: bool = True,
    backend: str | None = None,
) -> Mapping[str, float]:
    """Run inference over ``loader`` and return COCO metrics (``bbox_mAP``, ...).

    Distributed, each rank predicts its shard of ``loader`` and rank 0 evaluates all of them;
    the other ranks return ``{}``.
    """
    run = gather_inference(run_inference(model, loader, device))
    if run is None:
        return {}
    evaluator = build_evaluator(loader.dataset, metrics, classwise, backend)
    evaluator.process(run.samples, run.predictions)
    results = evaluator.evaluate()
    for image in run.skipped:
        logger.warning("left out of the evaluation, cannot be read: %s (%s)", image.path,
                       image.reason)
    logger.info("evaluation on %d images:\n%s", len(run.samples), evaluator.report())
    return results
