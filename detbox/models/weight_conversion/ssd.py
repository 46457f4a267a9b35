"""Key rules for torchvision's SSD models (``ssd300_vgg16``, ``ssdlite320_mobilenet_v3_large``).

Both keep their predictors in ``head.{classification,regression}_head.module_list.<level>``,
with a softmax over ``0 = background`` and the classes; detbox's ``SSDHead`` wants the classes
first and background last, per prior, so the class rows of every level are permuted.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence

from torch import Tensor

from detbox.errors import CheckpointError
from detbox.models.weight_conversion.class_rows import pick_classes

__all__ = ["SSD_ARCHS", "convert_ssd_state_dict", "ssd_num_classes"]

SSD_ARCHS = ("ssd300_vgg16", "ssdlite320_mobilenet_v3_large")

Rule = tuple[str, str | Callable[[re.Match], str]]
# VGG: conv1_1 .. relu4_3 keep their indices; torchvision's first "extra" block is pool4 ..
# relu5_3 (detbox's ``conv5``, same indices) followed by pool5/fc6/fc7 (``fc``).
_VGG_RULES: list[Rule] = [
    (r"^backbone\.features\.", "backbone.features."),
    (r"^backbone\.scale_weight$", "backbone.l2_norm_scale"),
    (r"^backbone\.extra\.0\.7\.", "backbone.fc."),
    (r"^backbone\.extra\.0\.", "backbone.conv5."),
    (r"^backbone\.extra\.(\d+)\.", lambda m: f"backbone.extra_layers.{int(m.group(1)) - 1}."),
    (r"^head\.classification_head\.module_list\.", "bbox_head.cls_convs."),
    (r"^head\.regression_head\.module_list\.", "bbox_head.reg_convs."),
]
# SSDlite: the backbone keeps torchvision's layout; a predictor is (conv, BN, ReLU6) then a
# 1x1 conv there, a flat (conv, BN, ReLU6, conv) sequence in detbox.
_LITE_RULES: list[Rule] = [
    (r"^backbone\.features\.", "backbone.features."),
    (r"^backbone\.extra\.", "backbone.extra_layers."),
    (r"^head\.classification_head\.module_list\.(\d+)\.0\.(\d)\.",
     r"bbox_head.cls_convs.\1.\2."),
    (r"^head\.classification_head\.module_list\.(\d+)\.1\.", r"bbox_head.cls_convs.\1.3."),
    (r"^head\.regression_head\.module_list\.(\d+)\.0\.(\d)\.", r"bbox_head.reg_convs.\1.\2."),
    (r"^head\.regression_head\.module_list\.(\d+)\.1\.", r"bbox_head.reg_convs.\1.3."),
]
_CLS_KEY = re.compile(r"^bbox_head\.cls_convs\.(\d+)\.(?:3\.)?(weight|bias)$")


def _predictor_outputs(state_dict: Mapping[str, Tensor], head: str) -> list[int]:
    """Output channels of each level's last conv of ``head`` (``classification`` or
    ``regression``), read from the biases, levels in order."""
    outputs = {}
    for key, value in state_dict.items():
        match = re.match(rf"^head\.{head}_head\.module_list\.(\d+)\.(?:1\.)?bias$", key)
        if match:
            outputs[int(match.group(1))] = value.numel()
    return [outputs[level] for level in sorted(outputs)]


def ssd_num_classes(state_dict: Mapping[str, Tensor]) -> int:
    """Softmax classes of a torchvision SSD state dict, background included (91 for COCO)."""
    cls_out = _predictor_outputs(state_dict, "classification")
    reg_out = _predictor_outputs(state_dict, "regression")
    if not cls_out or len(cls_out) != len(reg_out):
        raise CheckpointError(
            f"the checkpoint has no SSD classification head (keys such as "
            f"{list(state_dict)[:3]}); is it a state dict of a torchvision SSD?")
    return cls_out[0] // (reg_out[0] // 4)


def convert_ssd_state_dict(
    arch: str, state_dict: Mapping[str, Tensor], *, class_ids: Sequence[int] | None = None
) -> dict[str, Tensor]:
    """Rename an SSD state dict's keys and move each prior's background score last.

    Args:
        arch: one of ``SSD_ARCHS``.
        state_dict: the torchvision model's ``state_dict()``.
        class_ids: torchvision class indices to keep in detbox label order (None: all).

    Raises:
        CheckpointError: a key without a detbox counterpart.
    """
    rules = _VGG_RULES if arch == "ssd300_vgg16" else _LITE_RULES
    anchors = [out // 4 for out in _predictor_outputs(state_dict, "regression")]
    converted, unknown = {}, []
    for key, value in state_dict.items():
        new_key = next((re.sub(p, r, key, count=1) for p, r in rules if re.match(p, key)), None)
        if new_key is None:
            unknown.append(key)
            continue
        level = _CLS_KEY.match(new_key)
        if level:
            value = pick_classes(value, class_ids, groups=anchors[int(level.group(1))],
                                  background_last=True)
        converted[new_key] = value
    if unknown:
        raise CheckpointError(
            f"{len(unknown)} key(s) of the torchvision '{arch}' state dict have no detbox "
            f"counterpart, e.g. {unknown[:3]}")
    return converted
