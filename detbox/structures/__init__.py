from detbox.structures.boxes import (
    FLIP_DIRECTIONS,
    boxes_to_original,
    check_flip,
    compose_flips,
    flip_boxes,
)
from detbox.structures.instances import DetSample, ImageBatch, Instances

__all__ = [
    "DetSample", "FLIP_DIRECTIONS", "ImageBatch", "Instances", "boxes_to_original", "check_flip",
    "compose_flips", "flip_boxes",
]
