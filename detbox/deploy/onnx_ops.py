"""ONNX export of torchvision's deformable convolution (``torchvision::deform_conv2d``).

torchvision registers export functions for RoIAlign, RoIPool and NMS but not for its deformable
convolution, which RepPoints, Guided Anchoring and the DCN backbones use. ONNX has the operator
since opset 19 (``DeformConv``: input, weight, offset, bias and the optional modulation mask of
DCNv2, offsets laid out as torchvision's ``(dy, dx)`` pairs per kernel position), and onnxruntime
and OpenVINO run it. :func:`export_opset` raises the opset of a model that needs it.
"""

from __future__ import annotations

import logging

import torch
from torch import nn
from torchvision.ops import DeformConv2d

__all__ = ["DEFORM_CONV_OPSET", "export_opset", "register_deform_conv"]

logger = logging.getLogger(__name__)

DEFORM_CONV_OPSET = 19
_registered = False


def _deform_conv_symbolic(g, input, weight, offset, mask, bias, stride_h, stride_w, pad_h, pad_w,
                          dilation_h, dilation_w, groups, offset_groups, use_mask):
    from torch.onnx import symbolic_helper

    kernel = symbolic_helper._get_tensor_sizes(weight)[2:]
    inputs = [input, weight, offset, bias] + ([mask] if use_mask else [])
    return g.op(
        "DeformConv", *inputs,
        kernel_shape_i=kernel, strides_i=[stride_h, stride_w],
        pads_i=[pad_h, pad_w, pad_h, pad_w], dilations_i=[dilation_h, dilation_w],
        group_i=groups, offset_group_i=offset_groups,
    )


def register_deform_conv() -> None:
    """Make ``torch.onnx.export`` (TorchScript path) write ``DeformConv`` for
    ``torchvision::deform_conv2d``; idempotent."""
    global _registered
    if _registered:
        return
    from torch.onnx import symbolic_helper

    symbolic = symbolic_helper.parse_args(
        "v", "v", "v", "v", "v", "i", "i", "i", "i", "i", "i", "i", "i", "b"
    )(_deform_conv_symbolic)
    torch.onnx.register_custom_op_symbolic("torchvision::deform_conv2d", symbolic,
                                           DEFORM_CONV_OPSET)
    _registered = True


def export_opset(model: nn.Module, opset: int) -> int:
    """``opset``, raised to :data:`DEFORM_CONV_OPSET` when ``model`` has deformable
    convolutions (whose export is then registered)."""
    if not any(isinstance(m, DeformConv2d) for m in model.modules()):
        return opset
    register_deform_conv()
    if opset < DEFORM_CONV_OPSET:
        logger.info("exporting with ONNX opset %d (DeformConv) instead of %d",
                    DEFORM_CONV_OPSET, opset)
        return DEFORM_CONV_OPSET
    return opset
