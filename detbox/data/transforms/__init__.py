"""Data transforms, registered in ``TRANSFORMS`` and chained by ``Compose``.

Each transform is a small class whose ``__call__(results: dict) -> dict`` reads and updates
these keys (images are (3, H, W) tensors, boxes are xyxy pixels of the current image):

- from the dataset: ``img_path``, ``image_id``, ``file_name``, ``height``/``width`` (the size
  the annotation file states), ``ann_file`` and ``ann`` (the image's annotation record);
  ``seg_path`` (a dataset with ``seg_prefix``)
- ``img``: uint8 after ``LoadImage``, float32 (0-255 values) after ``Resize``, normalized
  after ``Normalize``
- ``ori_shape``, ``img_shape`` (H, W); ``scale_factor`` (sx, sy); ``flip``; ``pad_shape``
- ``gt_boxes`` (N, 4) float32, ``gt_labels`` (N,) int64, ``gt_masks`` (N, H, W) uint8,
  ``ignored_boxes`` (M, 4) float32, ``gt_seg`` (H, W) uint8 semantic map (255: no label),
  ``proposals`` (P, 4) float32 and ``proposal_scores`` (P,) (``LoadProposals``)
- ``mix_results``: other loaded samples for a mixing transform (``CopyPaste``), filled by
  ``MultiImageMixDataset``; ``seg_scale_factor`` after ``SegRescale``

Randomness comes from Python's ``random`` module, which the data loader seeds per worker.
"""

from detbox.data.transforms.albu import Albu
from detbox.data.transforms.compose import Compose
from detbox.data.transforms.copy_paste import CopyPaste, mask_boxes
from detbox.data.transforms.corrupt import Corrupt
from detbox.data.transforms.crop import MinIoURandomCrop, RandomCrop, crop_results
from detbox.data.transforms.expand import Expand
from detbox.data.transforms.formatting import IMAGENET_MEAN, IMAGENET_STD, Normalize, PackDetInputs
from detbox.data.transforms.geometric import (
    Pad,
    RandomFlip,
    RandomResize,
    Resize,
    drop_degenerate_boxes,
    resized_size,
)
from detbox.data.transforms.loading import (
    LoadAnnotations,
    LoadImage,
    decode_rles,
    segmentation_to_rle,
)
from detbox.data.transforms.photometric import PhotoMetricDistortion
from detbox.data.transforms.proposals import LoadProposals
from detbox.data.transforms.rotate import RandomRotate90, rotate_boxes_90
from detbox.data.transforms.semantic import SegRescale

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "Albu",
    "Compose",
    "CopyPaste",
    "Corrupt",
    "Expand",
    "LoadAnnotations",
    "LoadImage",
    "LoadProposals",
    "MinIoURandomCrop",
    "Normalize",
    "PackDetInputs",
    "Pad",
    "PhotoMetricDistortion",
    "RandomCrop",
    "RandomFlip",
    "RandomResize",
    "RandomRotate90",
    "Resize",
    "SegRescale",
    "crop_results",
    "decode_rles",
    "drop_degenerate_boxes",
    "mask_boxes",
    "resized_size",
    "rotate_boxes_90",
    "segmentation_to_rle",
]
