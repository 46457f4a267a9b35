"""Turn a torchvision detection checkpoint file into a detbox checkpoint file.

A torchvision COCO detector (91 class slots: background, 80 categories and ten unused ``N/A``
ids) becomes an 80-class detbox model that carries COCO's names and category ids, so it tests on
``instances_val2017.json`` as it is. A checkpoint with another class count (a model fine-tuned
with torchvision) keeps all its classes, named ``class_1`` .. ``class_K`` with ids ``1..K``.
"""

from __future__ import annotations

import json
import os
from typing import Any

from detbox.engine import extract_state_dict, load_checkpoint
from detbox.models.weight_conversion import (
    TORCHVISION_COCO_SLOTS,
    convert_torchvision_state_dict,
    torchvision_coco_categories,
    torchvision_num_classes,
)
from detbox.utils.io import atomic_torch_save

__all__ = ["convert_torchvision_checkpoint"]


def convert_torchvision_checkpoint(
    arch: str, source: str | os.PathLike, target: str | os.PathLike
) -> dict[str, Any]:
    """Convert ``source`` (a torchvision ``state_dict`` file) and write ``target``.

    Args:
        arch: torchvision builder name, one of ``SUPPORTED_ARCHS``.
        source: the torchvision checkpoint (a bare state dict, or one under ``model``).
        target: the detbox checkpoint to write (``state_dict`` plus ``meta``).

    Returns:
        The written ``meta``: ``class_names``, ``cat_ids`` and ``converted_from``.

    Raises:
        CheckpointError: the file is not a state dict of ``arch``.
    """
    state = extract_state_dict(load_checkpoint(source))
    slots = torchvision_num_classes(arch, state)
    if slots == TORCHVISION_COCO_SLOTS:
        names, cat_ids = torchvision_coco_categories()
        class_ids = cat_ids
    else:
        names = [f"class_{i}" for i in range(1, slots)]
        cat_ids = list(range(1, slots))
        class_ids = None
    converted = convert_torchvision_state_dict(arch, state, class_ids=class_ids)
    meta = {"class_names": names, "cat_ids": cat_ids, "converted_from": f"torchvision {arch}"}
    atomic_torch_save({"state_dict": converted, "meta": json.dumps(meta)}, target)
    return meta
