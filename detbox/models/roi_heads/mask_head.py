"""The Mask R-CNN mask head: a small FCN that predicts one binary mask per class per RoI."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import torch
from torch import Tensor, nn
from torchvision.ops import roi_align

from detbox.errors import ConfigError
from detbox.models.fused_conv import conv_transpose_relu
from detbox.models.layers.carafe import CARAFE
from detbox.models.layers.conv_block import conv_norm_relu
from detbox.registry import MODELS

__all__ = ["FCNMaskHead", "crop_mask_targets"]

DEFAULT_LOSS_MASK = MappingProxyType({"type": "CrossEntropyLoss", "use_sigmoid": True})
_UPSAMPLE_TYPES = ("deconv", "carafe", "nearest", "bilinear")


def _kaiming_fan_out(conv: nn.Module) -> None:
    nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
    if conv.bias is not None:
        nn.init.zeros_(conv.bias)


def build_mask_upsample(cfg: Mapping[str, Any] | None, in_channels: int, out_channels: int
                        ) -> tuple[nn.Module, int, int]:
    """The mask head's upsampling layer from ``upsample_cfg``.

    Returns:
        The layer, its output channels and its scale factor. ``'deconv'`` (the default) is a
        ``scale x scale`` stride-``scale`` transposed conv to ``out_channels``; ``'carafe'`` a
        :class:`~detbox.models.layers.CARAFE` (its keys ``k_up``, ``k_enc``,
        ``compressed_channels``); ``'nearest'`` / ``'bilinear'`` plain interpolation. All
        but the deconv keep ``in_channels``.
    """
    cfg = dict(cfg or {"type": "deconv"})
    kind = str(cfg.pop("type", "deconv")).lower()
    scale = cfg.pop("scale_factor", 2)
    if kind not in _UPSAMPLE_TYPES:
        raise ConfigError(f"FCNMaskHead upsample_cfg type must be one of {_UPSAMPLE_TYPES}, "
                          f"got {kind!r}")
    if not isinstance(scale, int) or scale < 1:
        raise ConfigError(f"FCNMaskHead upsample_cfg scale_factor must be a positive integer, "
                          f"got {scale!r}")
    if kind == "carafe":
        layer = MODELS.build({"type": CARAFE, "channels": in_channels, "scale": scale, **cfg},
                             path="roi_head.mask_head.upsample_cfg")
        return layer, in_channels, scale
    if cfg:
        raise ConfigError(f"FCNMaskHead {kind} upsampling takes only scale_factor, got "
                          f"{sorted(cfg)}")
    if kind == "deconv":
        return nn.ConvTranspose2d(in_channels, out_channels, scale, stride=scale), \
            out_channels, scale
    align = False if kind == "bilinear" else None
    return nn.Upsample(scale_factor=scale, mode=kind, align_corners=align), in_channels, scale


def crop_mask_targets(gt_masks: Tensor, boxes: Tensor, gt_inds: Tensor, size: int) -> Tensor:
    """Each box's crop of its GT mask, resampled to ``size x size`` and binarized.

    Args:
        gt_masks: (G, H, W) bool/uint8/float masks of one image's GT objects.
        boxes: (P, 4) xyxy boxes in the masks' pixel coordinates.
        gt_inds: (P,) int64 index of the GT each box is matched to.
        size: side of the target.

    Returns:
        (P, size, size) float targets in {0, 1}.
    """
    if boxes.shape[0] == 0:
        return boxes.new_zeros((0, size, size))
    used, local = torch.unique(gt_inds, return_inverse=True)
    masks = gt_masks[used].to(device=boxes.device, dtype=torch.float32)[:, None]
    rois = torch.cat([local[:, None].to(boxes.dtype), boxes[:, :4]], dim=1).float()
    crops = roi_align(masks, rois, (size, size), spatial_scale=1.0, sampling_ratio=0,
                      aligned=True)
    return (crops[:, 0] >= 0.5).float()


@MODELS.register
class FCNMaskHead(nn.Module):
    """``num_convs`` 3x3 convs, a 2x upsampling and a 1x1 per-class mask predictor.

    The upsampling is a deconvolution by default, or CARAFE (``upsample_cfg``). For FPN
    detectors the input is 14x14 RoI features and the output 28x28 masks; the C4 detector feeds
    the 7x7 res5 output with ``num_convs=0`` and predicts 14x14 masks.

    Args:
        num_classes: foreground classes C.
        in_channels: channels of the RoI features.
        roi_size: side of the input RoI features; masks are ``scale_factor * roi_size``.
        num_convs: 3x3 convs before upsampling.
        conv_channels: channels of the convs and the deconvolution.
        norm: normalization after each conv (``'BN'``, ``'GN'``, ...), or None.
        conv_cfg: the type of the 3x3 convs, e.g. ``dict(type='ConvWS')`` (GN+WS); None: plain.
        upsample_cfg: ``dict(type='deconv', scale_factor=2)`` (the default, followed by a
            ReLU), ``dict(type='carafe', scale_factor=2, k_up=5, k_enc=3,
            compressed_channels=64)`` (CARAFE's mask head), or ``'nearest'`` / ``'bilinear'``;
            see :func:`build_mask_upsample`.
        class_agnostic: predict one mask per RoI instead of one per class.
        loss_mask: ``MODELS`` config of the per-pixel loss (sigmoid cross-entropy).
        mask_thr: probability at which the pasted masks are binarized.
        paste_mode: how masks are pasted into the image (see ``detbox.models.mask_ops``).
    """

    def __init__(
        self,
        *,
        num_classes: int,
        in_channels: int = 256,
        roi_size: int = 14,
        num_convs: int = 4,
        conv_channels: int = 256,
        norm: str | None = None,
        conv_cfg: Mapping[str, Any] | None = None,
        upsample_cfg: Mapping[str, Any] | None = None,
        class_agnostic: bool = False,
        loss_mask: Mapping[str, Any] | nn.Module = DEFAULT_LOSS_MASK,
        mask_thr: float = 0.5,
        paste_mode: str = "grid",
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.class_agnostic = class_agnostic
        self.mask_thr = mask_thr
        self.paste_mode = paste_mode
        self.loss_mask = MODELS.build(loss_mask)
        self.convs = nn.Sequential(*[
            conv_norm_relu(in_channels if i == 0 else conv_channels, conv_channels, norm,
                           conv_cfg, path="roi_head.mask_head.conv_cfg")
            for i in range(num_convs)
        ])
        self.upsample, channels, scale = build_mask_upsample(
            upsample_cfg, conv_channels if num_convs else in_channels, conv_channels)
        self.mask_size = scale * roi_size
        # Only the deconvolution is followed by a ReLU (interpolation and CARAFE's convex
        # combinations keep the convs' non-negative output).
        self.relu = (nn.ReLU(inplace=True) if isinstance(self.upsample, nn.ConvTranspose2d)
                     else nn.Identity())
        self.predictor = nn.Conv2d(channels, 1 if class_agnostic else num_classes, 1)
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                _kaiming_fan_out(m)
        if isinstance(self.upsample, CARAFE):
            self.upsample.reset_parameters()  # its kernel predictor has its own init
        # A fan-out init of a predictor with few classes gives huge initial logits.
        nn.init.normal_(self.predictor.weight, std=0.001)

    def forward(self, roi_feats: Tensor) -> Tensor:
        """(R, C_in, roi_size, roi_size) features -> (R, K, 2 roi_size, 2 roi_size) logits.

        K is ``num_classes``, or 1 when class-agnostic.
        """
        return self.predictor(self.upsample_relu(self.convs(roi_feats)))

    def upsample_relu(self, x: Tensor) -> Tensor:
        """(R, C, S, S) -> (R, C', scale S, scale S): the upsampling and its ReLU (a
        deconvolution and its ReLU run as one oneDNN kernel at CPU inference)."""
        if isinstance(self.upsample, nn.ConvTranspose2d):
            return conv_transpose_relu(self.upsample, x)
        return self.relu(self.upsample(x))

    def select(self, mask_logits: Tensor, labels: Tensor) -> Tensor:
        """(R, K, M, M) logits -> (R, M, M) logits of each RoI's class."""
        if self.class_agnostic:
            return mask_logits[:, 0]
        return mask_logits[torch.arange(labels.numel(), device=labels.device), labels]

    def loss_by_outputs(
        self, mask_logits: Tensor, targets: Tensor, labels: Tensor
    ) -> dict[str, Tensor]:
        """``loss_mask``: mean per-pixel sigmoid cross-entropy on the positives' class masks.

        Args:
            mask_logits: (P, K, M, M) logits of the positive RoIs.
            targets: (P, M, M) binary targets from :func:`crop_mask_targets`.
            labels: (P,) int64 GT class of each positive.
        """
        if labels.numel() == 0:
            return {"loss_mask": mask_logits.sum() * 0.0}
        return {"loss_mask": self.loss_mask(self.select(mask_logits, labels), targets)}

    def predict_by_outputs(self, mask_logits: Tensor, labels: Tensor) -> Tensor:
        """Per-RoI mask probabilities of the predicted class: (R, K, M, M) -> (R, M, M)."""
        return self.select(mask_logits, labels).sigmoid()
