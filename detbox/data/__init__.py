"""Datasets, transforms, batching and sampling: image files to ``ImageBatch`` objects.

Importing this package registers every dataset in ``DATASETS`` and every transform in
``TRANSFORMS``.
"""

from detbox.data import transforms
from detbox.data.base import DetectionDataset
from detbox.data.build import DetDataLoader, build_dataloader, build_dataset, seed_worker
from detbox.data.coco import CocoDataset, default_pipeline
from detbox.data.collate import collate
from detbox.data.custom import CustomDataset
from detbox.data.dataset_wrappers import ConcatDataset, RepeatDataset
from detbox.data.mix_dataset import MultiImageMixDataset
from detbox.data.samplers import GroupedBatchSampler, InferenceSampler, aspect_ratio_groups
from detbox.data.synthetic import (
    CATEGORIES,
    SyntheticShapesDataset,
    generate_synthetic_coco,
    synthetic_cache_dir,
)
from detbox.data.voc import VOCDataset
from detbox.data.wider_face import WIDERFaceDataset

__all__ = [
    "CATEGORIES",
    "CocoDataset",
    "ConcatDataset",
    "CustomDataset",
    "DetDataLoader",
    "DetectionDataset",
    "GroupedBatchSampler",
    "InferenceSampler",
    "MultiImageMixDataset",
    "RepeatDataset",
    "SyntheticShapesDataset",
    "VOCDataset",
    "WIDERFaceDataset",
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
