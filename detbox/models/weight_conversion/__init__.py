"""Converters from other toolboxes' checkpoints to detbox state dicts."""

from detbox.models.weight_conversion.coco_classes import (
    TORCHVISION_COCO_SLOTS,
    torchvision_coco_categories,
    unused_torchvision_slots,
)
from detbox.models.weight_conversion.detectron_caffe import (
    convert_detectron_caffe_resnet,
    read_detectron_pickle,
)
from detbox.models.weight_conversion.torchvision import (
    SUPPORTED_ARCHS,
    convert_torchvision_state_dict,
    torchvision_num_classes,
)

__all__ = [
    "SUPPORTED_ARCHS",
    "TORCHVISION_COCO_SLOTS",
    "convert_detectron_caffe_resnet",
    "convert_torchvision_state_dict",
    "read_detectron_pickle",
    "torchvision_coco_categories",
    "torchvision_num_classes",
    "unused_torchvision_slots",
]
