"""Converters between annotation formats; every output is COCO JSON, YOLO text or (WIDER FACE)
VOC XML.

``detbox convert`` runs them from the command line. Each writes its output atomically, so an
interrupted conversion never leaves a half-written file behind.
"""

from detbox.dataset_converters.cityscapes import cityscapes_to_coco
from detbox.dataset_converters.labelme import labelme_to_coco
from detbox.dataset_converters.masks import masks_to_coco
from detbox.dataset_converters.voc import voc_to_coco
from detbox.dataset_converters.wider_face import wider_face_to_voc
from detbox.dataset_converters.yolo import coco_to_yolo, yolo_to_coco

__all__ = [
    "cityscapes_to_coco",
    "coco_to_yolo",
    "labelme_to_coco",
    "masks_to_coco",
    "voc_to_coco",
    "wider_face_to_voc",
    "yolo_to_coco",
]
