"""Small building blocks shared by backbones, necks and heads."""

from detbox.models.layers.carafe import CARAFE, carafe_reassemble
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
from detbox.models.layers.generalized_attention import GeneralizedAttention
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
    "BATCH_NORMS",
    "CARAFE",
    "NORM_CHOICES",
    "ContextBlock",
    "ConvWS2d",
    "DeformConv",
    "FrozenBatchNorm2d",
    "GeneralizedAttention",
    "ModulatedDeformConv",
    "NonLocal2d",
    "Scale",
    "build_norm",
    "carafe_reassemble",
    "conv_like",
    "deformable_conv_names",
    "deformable_like",
    "norm_factory",
    "plain_conv_from_ws",
    "standardize_weight",
]
