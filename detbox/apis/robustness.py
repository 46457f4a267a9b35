"""The robustness benchmark: a detector evaluated on its test split under each corruption and
severity (``detbox test-robustness``)."""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

from detbox.apis.evaluate import evaluate_detector
from detbox.data import build_dataloader, build_dataset
from detbox.data.base import default_pipeline
from detbox.errors import ConfigError
from detbox.evaluation.robustness import named_stats

logger = logging.getLogger(__name__)

__all__ = ["FirstImages", "corrupted_dataset", "evaluate_robustness"]


def _is_load_image(step: Any) -> bool:
    kind = step.get("type") if isinstance(step, Mapping) else step
    return kind == "LoadImage" or getattr(kind, "__name__", None) == "LoadImage"


def _is_corrupt(step: Any) -> bool:
    kind = step.get("type") if isinstance(step, Mapping) else type(step)
    return kind == "Corrupt" or getattr(kind, "__name__", None) == "Corrupt"


def corrupted_dataset(cfg: Mapping[str, Any], corruption: str, severity: int) -> dict:
    """A copy of the dataset config ``cfg`` whose pipeline corrupts the images: a
    ``Corrupt`` step right after ``LoadImage`` (in every dataset of a wrapper).

    Raises:
        ConfigError: a pipeline without ``LoadImage``, or one that corrupts already.
    """
    cfg = dict(copy.deepcopy(cfg))
    inner = [key for key in ("dataset", "datasets") if key in cfg]
    if inner:
        for key in inner:
            cfg[key] = (corrupted_dataset(cfg[key], corruption, severity) if key == "dataset"
                        else [corrupted_dataset(d, corruption, severity) for d in cfg[key]])
        return cfg
    pipeline = cfg.get("pipeline")
    if pipeline is None:
        pipeline = default_pipeline(bool(cfg.get("test_mode", False)),
                                    bool(cfg.get("with_mask", False)))
    pipeline = list(pipeline)
    if any(_is_corrupt(step) for step in pipeline):
        raise ConfigError("the test pipeline has a Corrupt step already; test-robustness adds "
                          "its own: remove it")
    where = [i for i, step in enumerate(pipeline) if _is_load_image(step)]
    if not where:
        raise ConfigError("the test pipeline has no LoadImage step to put Corrupt after")
    pipeline.insert(where[0] + 1, {"type": "Corrupt", "corruption": corruption,
                                   "severity": int(severity)})
    cfg["pipeline"] = pipeline
    return cfg


class FirstImages(Dataset):
    """The first ``count`` images of a dataset; everything else is the dataset's."""

    def __init__(self, dataset: Dataset, count: int) -> None:
        self.dataset = dataset
        self.count = min(int(count), len(dataset))

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> Any:
        if not 0 <= index < self.count:
            raise IndexError(index)
        return self.dataset[index]

    def __getattr__(self, name: str) -> Any:
        if name == "dataset":  # not set yet (unpickling)
            raise AttributeError(name)
        return getattr(self.dataset, name)


def _conditions(corruptions: Sequence[str], severities: Sequence[int]) -> list[tuple[str, int]]:
    """(corruption, severity) pairs to evaluate; severity 0 once, as ``("clean", 0)``."""
    pairs = [("clean", 0)] if 0 in severities else []
    return pairs + [(c, s) for c in corruptions for s in sorted(set(severities)) if s > 0]


def evaluate_robustness(
    model: nn.Module, section: Mapping[str, Any], device: torch.device,
    corruptions: Sequence[str], severities: Sequence[int], metrics: Sequence[str], *,
    seed: int = 0, rank: int = 0, world_size: int = 1, num_images: int | None = None,
    backend: str | None = None, on_result: Callable[[str, int, dict], None] | None = None,
) -> dict[str, Any]:
    """Evaluate ``model`` on the test loader ``section`` under each corruption x severity.

    Args:
        model: the detector, ready for inference on ``device``.
        section: the config's test data loader section.
        corruptions: corruption names (``detbox.data.transforms.corrupt.CORRUPTIONS``).
        severities: 0 (the clean images, evaluated once) to 5.
        metrics: COCO eval types, ``bbox`` and/or ``segm``.
        seed, rank, world_size: as for ``build_dataloader``; distributed, every rank predicts
            its shard and rank 0 evaluates.
        num_images: evaluate only the split's first images.
        backend: the COCOeval implementation (a config's ``evaluation.backend``).
        on_result: called on rank 0 with (corruption, severity, named stats per eval type)
            after each evaluation.

    Returns:
        On rank 0 the result set ``{"clean": {type: stats}, "corruptions": {name:
        {"<severity>": {type: stats}}}}`` (``detbox.evaluation.robustness``), stats named by
        ``STAT_NAMES``; ``{}`` on the other ranks.
    """
    if not section.get("dataset"):
        raise ConfigError("the test data loader section has no dataset")
    results: dict[str, Any] = {"clean": {}, "corruptions": {c: {} for c in corruptions}}
    for corruption, severity in _conditions(corruptions, severities):
        dataset_cfg = (section["dataset"] if severity == 0
                       else corrupted_dataset(section["dataset"], corruption, severity))
        dataset = build_dataset(dataset_cfg)
        if num_images:
            dataset = FirstImages(dataset, num_images)
        loader = build_dataloader({**section, "dataset": dataset}, seed=seed, training=False,
                                  rank=rank, world_size=world_size)
        scores = evaluate_detector(model, loader, device, metrics, classwise=False,
                                   backend=backend)
        if rank != 0:
            continue
        stats = {kind: named_stats(scores[f"{kind}_stats"]) for kind in metrics}
        if severity == 0:
            results["clean"] = stats
        else:
            results["corruptions"][corruption][str(severity)] = stats
        if on_result is not None:
            on_result(corruption, severity, stats)
    return results if rank == 0 else {}
