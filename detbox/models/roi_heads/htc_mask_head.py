"""The mask head of Hybrid Task Cascade: an FCN mask head that also reads the previous stage's
mask features (the paper's mask information flow)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import Tensor, nn

from detbox.models.roi_heads.mask_head import DEFAULT_LOSS_MASK, FCNMaskHead
from detbox.registry import MODELS

__all__ = ["HTCMaskHead"]


@MODELS.register
class HTCMaskHead(FCNMaskHead):
    """``FCNMaskHead`` whose input may be enriched by the previous stage's mask features.

    With ``with_conv_res`` the previous stage's features (the output of its convs, before the
    upsampling) pass a 1x1 conv and are added to the RoI features before this head's convs.
    ``forward`` returns both the logits and this stage's features, for the next stage.

    Args:
        num_classes: foreground classes C.
        in_channels: channels of the RoI features.
        roi_size: side of the input RoI features; masks are ``2 * roi_size``.
        num_convs: 3x3 convs before upsampling.
        conv_channels: channels of the convs and the deconvolution.
        norm: normalization after each conv, or None.
        class_agnostic: predict one mask per RoI instead of one per class.
        loss_mask: ``MODELS`` config of the per-pixel loss.
        mask_thr: probability at which the pasted masks are binarized.
        paste_mode: how masks are pasted into the image.
        with_conv_res: read the previous stage's features (every HTC stage but the first;
            ``HTCRoIHead`` sets it per stage).
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
        class_agnostic: bool = False,
        loss_mask: Mapping[str, Any] | nn.Module = DEFAULT_LOSS_MASK,
        mask_thr: float = 0.5,
        paste_mode: str = "grid",
        with_conv_res: bool = True,
    ) -> None:
        super().__init__(num_classes=num_classes, in_channels=in_channels, roi_size=roi_size,
                         num_convs=num_convs, conv_channels=conv_channels, norm=norm,
                         class_agnostic=class_agnostic, loss_mask=loss_mask, mask_thr=mask_thr,
                         paste_mode=paste_mode)
        channels = conv_channels if num_convs else in_channels
        self.conv_res = nn.Conv2d(channels, in_channels, 1) if with_conv_res else None
        if self.conv_res is not None:
            nn.init.kaiming_normal_(self.conv_res.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(self.conv_res.bias)
        self.relu_res = nn.ReLU()

    @property
    def with_conv_res(self) -> bool:
        return self.conv_res is not None

    def forward(self, roi_feats: Tensor, res_feat: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Mask logits and features of (R, C_in, S, S) RoI features.

        Args:
            roi_feats: (R, C_in, S, S) pooled features.
            res_feat: (R, C, S, S) the previous stage's features, or None; ignored without
                ``with_conv_res``.

        Returns:
            ``logits`` (R, K, 2S, 2S) and ``feats`` (R, C, S, S), the input of the next
            stage's ``res_feat``.
        """
        x = roi_feats
        if res_feat is not None and self.conv_res is not None:
            x = x + self.relu_res(self.conv_res(res_feat))
        feats = self.convs(x)
        return self.predictor(self.upsample_relu(feats)), feats
