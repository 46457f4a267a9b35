"""Load torchvision's detection models into the detbox models of ``configs/torchvision``.

torchvision numbers classes with ``0 = background`` and the objects from 1; detbox uses
``0 .. C-1`` for objects and puts the softmax background last. The converter renames every key
and permutes the class rows of the predictors; everything else (backbone, FPN, RPN, heads) maps
one to one.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence

from torch import Tensor

from detbox.errors import CheckpointError
from detbox.models.weight_conversion.class_rows import pick_classes as _pick_classes
from detbox.models.weight_conversion.ssd import SSD_ARCHS, convert_ssd_state_dict, ssd_num_classes
from detbox.models.weight_conversion.torchvision_fcos import (
    FCOS_ARCH,
    FCOS_CLASSIFIER,
    FCOS_RULES,
)

__all__ = ["SUPPORTED_ARCHS", "convert_torchvision_state_dict", "torchvision_num_classes"]

SUPPORTED_ARCHS = (
    "fasterrcnn_resnet50_fpn", "maskrcnn_resnet50_fpn", "retinanet_resnet50_fpn", FCOS_ARCH,
    *SSD_ARCHS,
)

# (pattern, replacement) pairs; ``(?:\.0)?`` accepts keys from before torchvision wrapped its
# convs in ``Conv2dNormActivation``.
_COMMON_RULES = [
    (r"^backbone\.body\.", "backbone."),
    (r"^backbone\.fpn\.inner_blocks\.(\d+)(?:\.0)?\.", r"neck.lateral_convs.\1."),
    (r"^backbone\.fpn\.layer_blocks\.(\d+)(?:\.0)?\.", r"neck.output_convs.\1."),
]
_RCNN_RULES = [
    (r"^rpn\.head\.conv(?:\.0\.0)?\.", "rpn_head.convs.0."),
    (r"^rpn\.head\.cls_logits\.", "rpn_head.cls_logits."),
    (r"^rpn\.head\.bbox_pred\.", "rpn_head.box_deltas."),
    (r"^roi_heads\.box_head\.fc6\.", "roi_head.bbox_head.fcs.0."),
    (r"^roi_heads\.box_head\.fc7\.", "roi_head.bbox_head.fcs.2."),
    (r"^roi_heads\.box_predictor\.cls_score\.", "roi_head.bbox_head.fc_cls."),
    (r"^roi_heads\.box_predictor\.bbox_pred\.", "roi_head.bbox_head.fc_reg."),
    (r"^roi_heads\.mask_head\.(\d+)\.0\.", r"roi_head.mask_head.convs.\1.0."),
    (r"^roi_heads\.mask_head\.mask_fcn(\d+)\.", r"roi_head.mask_head.convs.<\1>.0."),
    (r"^roi_heads\.mask_predictor\.conv5_mask\.", "roi_head.mask_head.upsample."),
    (r"^roi_heads\.mask_predictor\.mask_fcn_logits\.", "roi_head.mask_head.predictor."),
]
_RETINA_RULES = [
    (r"^backbone\.fpn\.extra_blocks\.p6\.", "neck.extra_level_convs.0."),
    (r"^backbone\.fpn\.extra_blocks\.p7\.", "neck.extra_level_convs.1."),
    (r"^head\.classification_head\.conv\.(\d+)\.0\.", r"bbox_head.cls_convs.<2*\1>."),
    (r"^head\.classification_head\.cls_logits\.", "bbox_head.cls_logits."),
    (r"^head\.regression_head\.conv\.(\d+)\.0\.", r"bbox_head.reg_convs.<2*\1>."),
    (r"^head\.regression_head\.bbox_reg\.", "bbox_head.box_deltas."),
]


def _eval_index(key: str) -> str:
    """Resolve ``<k>`` (1-based torchvision index) and ``<2*k>`` (conv + ReLU pairs)."""
    key = re.sub(r"<2\*(\d+)>", lambda m: str(2 * int(m.group(1))), key)
    return re.sub(r"<(\d+)>", lambda m: str(int(m.group(1)) - 1), key)


def _rename(key: str, rules: list[tuple[str, str]]) -> str | None:
    for pattern, replacement in rules:
        if re.match(pattern, key):
            return _eval_index(re.sub(pattern, replacement, key, count=1))
    return None


def _class_rows(arch: str, new_key: str, num_anchors: int,
                class_ids: Sequence[int] | None) -> Callable[[Tensor], Tensor] | None:
    if new_key.startswith("roi_head.bbox_head.fc_cls."):
        return lambda rows: _pick_classes(rows, class_ids, background_last=True)
    if new_key.startswith("roi_head.bbox_head.fc_reg."):
        return lambda rows: _pick_classes(rows, class_ids, width=4)
    if new_key.startswith("roi_head.mask_head.predictor."):
        return lambda rows: _pick_classes(rows, class_ids)
    if arch.startswith("retinanet") and new_key.startswith("bbox_head.cls_logits."):
        # torchvision's RetinaNet keeps a sigmoid output for its background index 0; it is never
        # a training target and detbox has no such class, so its channels are dropped.
        return lambda rows: _pick_classes(rows, class_ids, groups=num_anchors)
    if arch == FCOS_ARCH and new_key.startswith("bbox_head.cls_logits."):
        return lambda rows: _pick_classes(rows, class_ids)
    return None


def convert_torchvision_state_dict(
    arch: str, state_dict: Mapping[str, Tensor], *, class_ids: Sequence[int] | None = None,
    num_anchors: int = 9,
) -> dict[str, Tensor]:
    """Turn a torchvision detection model's ``state_dict`` into the matching detbox one.

    Args:
        arch: torchvision builder name, one of ``SUPPORTED_ARCHS``.
        state_dict: the torchvision model's ``state_dict()`` (any number of classes).
        class_ids: torchvision class indices to keep, in detbox label order; None keeps all,
            so detbox label ``i`` is torchvision's ``i + 1``. For COCO's 80 categories pass the
            dataset's ``cat_ids`` (torchvision's indices are COCO category ids) and set
            ``num_classes=80``.
        num_anchors: anchors per location of a RetinaNet (9 in torchvision).

    Returns:
        A state dict for the model built from ``configs/torchvision/<arch>.py``.

    Raises:
        CheckpointError: for an unknown ``arch`` or a key the converter does not know.
    """
    if arch not in SUPPORTED_ARCHS:
        raise CheckpointError(
            f"cannot convert torchvision '{arch}'; supported: {', '.join(SUPPORTED_ARCHS)}")
    if arch in SSD_ARCHS:
        return convert_ssd_state_dict(arch, state_dict, class_ids=class_ids)
    arch_rules = {"retinanet_resnet50_fpn": _RETINA_RULES, FCOS_ARCH: FCOS_RULES}
    rules = _COMMON_RULES + arch_rules.get(arch, _RCNN_RULES)
    converted, unknown = {}, []
    for key, value in state_dict.items():
        if key.endswith(".num_batches_tracked"):
            # BatchNorm's step counter, present when torchvision built the model without
            # pretrained weights; detbox's frozen BN has no such buffer.
            continue
        new_key = _rename(key, rules)
        if new_key is None:
            unknown.append(key)
            continue
        reorder = _class_rows(arch, new_key, num_anchors, class_ids)
        converted[new_key] = reorder(value) if reorder is not None else value
    if unknown:
        raise CheckpointError(
            f"{len(unknown)} key(s) of the torchvision '{arch}' state dict have no detbox "
            f"counterpart, e.g. {unknown[:3]}")
    return converted


def torchvision_num_classes(
    arch: str, state_dict: Mapping[str, Tensor], num_anchors: int = 9
) -> int:
    """Classes of a torchvision detector's ``state_dict``, background included (91 for COCO).

    Raises:
        CheckpointError: the state dict has no classifier of ``arch``.
    """
    if arch in SSD_ARCHS:
        return ssd_num_classes(state_dict)
    if arch.startswith("retinanet"):
        key = "head.classification_head.cls_logits.bias"
        if key in state_dict:
            return state_dict[key].numel() // num_anchors
    elif arch == FCOS_ARCH:
        if FCOS_CLASSIFIER in state_dict:
            return state_dict[FCOS_CLASSIFIER].numel()
    elif "roi_heads.box_predictor.cls_score.bias" in state_dict:
        return state_dict["roi_heads.box_predictor.cls_score.bias"].numel()
    raise CheckpointError(
        f"the checkpoint has no classifier of a torchvision '{arch}' (keys such as "
        f"{list(state_dict)[:3]}); is it a state dict of that model?")
