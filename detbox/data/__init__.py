"""Datasets, transforms, batching and sampling: image files to ``ImageBatch`` objects.

Importing this package registers every dataset in ``DATASETS`` and every transform in
``TRANSFORMS``.
"""

from detbox.data import transforms
from detbox.data.build import DetDataLoader, build_dataloader, build_dataset, seed_worker
from detbox.data.coco import CocoDataset, default_pipeline
from detbox.data.collate import collate
from detbox.data.samplers import GroupedBatchSampler, InferenceSampler, aspect_ratio_groups
from detbox.data.synthetic import (
    CATEGORIES,
    SyntheticShapesDataset,
    generate_synthetic_coco,
    synthetic_cache_dir,
)

__all__ = [
    "CATEGORIES",
    "CocoDataset",
    "DetDataLoader",
    "GroupedBatchSampler",
    "InferenceSampler",
    "SyntheticShapesDataset",
    "aspect_ratio_groups",
    "build_dataloader",
    "build_dataset",
    "collate",
    "default_pipeline",
    "generate_synthetic_coco",
    "seed_worker",
    "synthetic_cache_dir",
    "transforms",
]
