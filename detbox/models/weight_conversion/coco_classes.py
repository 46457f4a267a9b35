"""COCO's 80 categories as torchvision's COCO detectors number them.

torchvision's detection label ``i`` (1..90) is COCO category id ``i``; the ten ids COCO never
used are named ``N/A`` in torchvision's weights metadata and label 0 is ``__background__``. A
trained torchvision model never predicts those slots, so a converted checkpoint keeps only the
80 real categories, with their COCO names and ids (what ``instances_val2017.json`` declares).
"""

from __future__ import annotations

__all__ = ["TORCHVISION_COCO_SLOTS", "torchvision_coco_categories", "unused_torchvision_slots"]

# Classes of a torchvision COCO detector, background included (``num_classes=91``).
TORCHVISION_COCO_SLOTS = 91


def torchvision_coco_categories() -> tuple[list[str], list[int]]:
    """COCO's 80 category names and ids, in id order, from torchvision's weights metadata.

    Returns:
        ``(names, cat_ids)``: ``names[k]`` is COCO category ``cat_ids[k]``, which is also the
        torchvision class index to keep for detbox label ``k``.
    """
    from torchvision.models.detection import FasterRCNN_ResNet50_FPN_Weights

    slots = list(FasterRCNN_ResNet50_FPN_Weights.COCO_V1.meta["categories"])
    kept = [(name, index) for index, name in enumerate(slots)
            if index > 0 and name not in ("N/A", "__background__")]
    return [name for name, _ in kept], [index for _, index in kept]


def unused_torchvision_slots() -> list[int]:
    """The class indices of a torchvision COCO detector that a converted checkpoint drops:
    ``0`` (background) and the ten ``N/A`` ids, in increasing order."""
    _, kept = torchvision_coco_categories()
    return [index for index in range(TORCHVISION_COCO_SLOTS) if index not in kept]
