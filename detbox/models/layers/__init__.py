"""Small building blocks shared by backbones, necks and heads."""

from detbox.models.layers.context_block import ContextBlock
from detbox.models.layers.conv_ws import (
    ConvWS2d,
    conv_like,
    plain_conv_from_ws,
    standardize_weight,
)
from detbox.models.layers.deform_conv import (
    DeformConv,
    ModulatedDeformConv,
    deformable_conv_names,
    deformable_like,
)
from detbox.models.layers.non_local import NonLocal2d
from detbox.models.layers.norm import (
    BATCH_NORMS,
    NORM_CHOICES,
    FrozenBatchNorm2d,
    build_norm,
    norm_factory,
)
from detbox.models.layers.scale import Scale

__all__ = [
    "BATCH_NORMS", "NORM_CHOICES", "FrozenBatchNorm2d", "NonLocal2d", "Scale", "build_norm",
    "norm_factory",
    "DeformConv", "ModulatedDeformConv", "deformable_conv_names", "deformable_like",
    "ContextBlock", "ConvWS2d", "conv_like", "plain_conv_from_ws", "standardize_weight",
]
