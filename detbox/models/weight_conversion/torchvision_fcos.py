"""Key rules of torchvision's ``fcos_resnet50_fpn`` for ``convert_torchvision_state_dict``.

Backbone and FPN (with P6/P7 from P5) are named as in torchvision's RetinaNet. The head's towers
are conv, GroupNorm, ReLU triples in both libraries, so their indices carry over; the classifier
has one output per class (torchvision's index 0, background, is never a target and is dropped
like RetinaNet's).
"""

from __future__ import annotations

__all__ = ["FCOS_ARCH", "FCOS_CLASSIFIER", "FCOS_RULES"]

FCOS_ARCH = "fcos_resnet50_fpn"
#: the key whose length is the model's class count (background included).
FCOS_CLASSIFIER = "head.classification_head.cls_logits.bias"
FCOS_RULES = [
    (r"^backbone\.fpn\.extra_blocks\.p6\.", "neck.extra_level_convs.0."),
    (r"^backbone\.fpn\.extra_blocks\.p7\.", "neck.extra_level_convs.1."),
    (r"^head\.classification_head\.conv\.(\d+)\.", r"bbox_head.cls_convs.\1."),
    (r"^head\.classification_head\.cls_logits\.", "bbox_head.cls_logits."),
    (r"^head\.regression_head\.conv\.(\d+)\.", r"bbox_head.reg_convs.\1."),
    (r"^head\.regression_head\.bbox_reg\.", "bbox_head.bbox_reg."),
    (r"^head\.regression_head\.bbox_ctrness\.", "bbox_head.centerness."),
]
