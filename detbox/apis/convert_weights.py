"""Turn another library's checkpoint file into a detbox checkpoint file.

``convert_torchvision_checkpoint``: a torchvision detection checkpoint becomes a detbox detector
checkpoint. ``convert_detectron_caffe_checkpoint``: Detectron / MSRA caffe ImageNet ResNet
weights (``R-50.pkl``) become a backbone checkpoint for ``init_cfg=dict(backbone_checkpoint=...)``.

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
from detbox.models.weight_conversion.detectron_caffe import (
    convert_detectron_caffe_resnet,
    read_detectron_pickle,
)
from detbox.utils.io import atomic_torch_save

__all__ = ["convert_detectron_caffe_checkpoint", "convert_torchvision_checkpoint"]

# (blocks per stage, bottleneck) of the standard ResNets, to name what a converted file holds.
_RESNET_DEPTHS = {((2, 2, 2, 2), False): 18, ((3, 4, 6, 3), False): 34, ((3, 4, 6, 3), True): 50,
                  ((3, 4, 23, 3), True): 101, ((3, 8, 36, 3), True): 152}


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


def convert_detectron_caffe_checkpoint(
    source: str | os.PathLike, target: str | os.PathLike
) -> dict[str, Any]:
    """Convert a Detectron caffe ImageNet ResNet pickle and write ``target`` atomically.

    ``target`` is a bare torchvision-layout state dict (tensors only: ``torch.load(target,
    weights_only=True)`` reads it), for ``init_cfg=dict(backbone_checkpoint=target)`` with a
    ``ResNet(style="caffe")`` backbone; see
    :mod:`detbox.models.weight_conversion.detectron_caffe` for the names and the norms.

    Returns:
        ``blocks`` (blocks per stage), ``bottleneck`` and ``arch`` (``'ResNet-50'``, or a
        description when the counts are no standard depth).

    Raises:
        CheckpointError: the file is missing, not a pickle of arrays, or holds a name that is
            no part of a Detectron ResNet (the message names the file and the key).
    """
    state = convert_detectron_caffe_resnet(read_detectron_pickle(source), source=str(source))
    blocks = tuple(len({k.split(".")[1] for k in state if k.startswith(f"layer{i}.")})
                   for i in range(1, 5))
    bottleneck = "layer1.0.conv3.weight" in state
    depth = _RESNET_DEPTHS.get((blocks, bottleneck))
    arch = f"ResNet-{depth}" if depth else (
        f"a ResNet with {'bottleneck' if bottleneck else 'basic'} blocks {blocks}")
    atomic_torch_save(state, target)
    return {"blocks": blocks, "bottleneck": bottleneck, "arch": arch}
