"""Mask Scoring R-CNN's MaskIoU head: predict how well each predicted mask fits its object.

A detection's classification score says nothing about its mask's quality. The MaskIoU head
regresses the IoU between the (binarized) predicted mask and the GT mask, and the mask score
used for ranking becomes ``classification score x predicted IoU`` (Huang et al., 2019).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from detbox.registry import MODELS

__all__ = ["MaskIoUHead", "mask_area_inside_boxes", "mask_iou_targets"]


def mask_area_inside_boxes(gt_masks: Tensor, boxes: Tensor, gt_inds: Tensor) -> Tensor:
    """Fraction of each GT mask's area that lies inside its matched box.

    Uses a summed-area table per GT mask so every box costs four lookups.

    Args:
        gt_masks: (G, H, W) binary masks.
        boxes: (P, 4) xyxy boxes in the masks' pixel coordinates.
        gt_inds: (P,) int64 GT index of each box.

    Returns:
        (P,) float in [0, 1]; 0 where the GT mask is empty.
    """
    if boxes.shape[0] == 0:
        return boxes.new_zeros((0,))
    used, local = torch.unique(gt_inds, return_inverse=True)
    masks = gt_masks[used].to(device=boxes.device, dtype=torch.int32)
    height, width = masks.shape[-2:]
    table = masks.cumsum(1, dtype=torch.int32).cumsum(2, dtype=torch.int32)
    table = F.pad(table, (1, 0, 1, 0))  # (G', H + 1, W + 1)
    x1 = boxes[:, 0].round().clamp(0, width).long()
    y1 = boxes[:, 1].round().clamp(0, height).long()
    x2 = boxes[:, 2].round().clamp(0, width).long()
    y2 = boxes[:, 3].round().clamp(0, height).long()
    inside = (table[local, y2, x2] - table[local, y1, x2] - table[local, y2, x1]
              + table[local, y1, x1])
    total = table[local, -1, -1]
    return inside.float() / total.clamp(min=1).float()


def mask_iou_targets(mask_probs: Tensor, mask_targets: Tensor, area_ratios: Tensor,
                     threshold: float = 0.5) -> Tensor:
    """IoU of each binarized predicted mask with its whole GT mask, measured in RoI space.

    The target crop only sees the part of the GT inside the RoI; dividing its area by the
    fraction of the GT that lies inside the box recovers the GT's full area, so objects cut
    off by a too-small box get a low IoU.

    Args:
        mask_probs: (P, M, M) predicted probabilities of the GT class.
        mask_targets: (P, M, M) binary GT crops.
        area_ratios: (P,) from :func:`mask_area_inside_boxes`.
        threshold: binarization threshold of the predicted masks.

    Returns:
        (P,) IoU targets in [0, 1].
    """
    pred = (mask_probs > threshold).float()
    overlap = (pred * mask_targets).sum((-1, -2))
    pred_area = pred.sum((-1, -2))
    target_area = mask_targets.sum((-1, -2))
    valid = area_ratios > 0
    full_area = torch.where(valid, target_area / area_ratios.clamp(min=1e-6), target_area)
    union = pred_area + full_area - overlap
    iou = torch.where(union > 0, overlap / union.clamp(min=1e-6), torch.zeros_like(union))
    return torch.where(valid, iou, torch.zeros_like(iou)).clamp(0.0, 1.0)


@MODELS.register
class MaskIoUHead(nn.Module):
    """Convs + FCs over RoI features concatenated with the predicted mask (max-pooled).

    Args:
        num_classes: foreground classes C; one IoU is predicted per class.
        in_channels: channels of the RoI features (the mask head's input).
        roi_size: side of the RoI features; the mask prediction is twice this and is
            max-pooled down to it.
        num_convs: 3x3 convs; the last has stride 2.
        conv_channels: their channels.
        num_fcs: fully connected layers after the convs.
        fc_channels: their width.
        loss_weight: weight of the L2 regression loss ``loss_mask_iou``.
    """

    def __init__(
        self,
        *,
        num_classes: int,
        in_channels: int = 256,
        roi_size: int = 14,
        num_convs: int = 4,
        conv_channels: int = 256,
        num_fcs: int = 2,
        fc_channels: int = 1024,
        loss_weight: float = 0.5,
    ) -> None:
        super().__init__()
        if num_convs < 1:
            raise ValueError("MaskIoUHead needs at least one conv (the last one downsamples)")
        self.num_classes = num_classes
        self.loss_weight = loss_weight
        convs: list[nn.Module] = []
        for i in range(num_convs):
            stride = 2 if i == num_convs - 1 else 1
            convs += [nn.Conv2d((in_channels + 1) if i == 0 else conv_channels, conv_channels, 3,
                                stride=stride, padding=1), nn.ReLU(inplace=True)]
        self.convs = nn.Sequential(*convs)
        pooled = (roi_size + 1) // 2
        fcs: list[nn.Module] = []
        for i in range(num_fcs):
            fcs += [nn.Linear(conv_channels * pooled * pooled if i == 0 else fc_channels,
                              fc_channels), nn.ReLU(inplace=True)]
        self.fcs = nn.Sequential(*fcs)
        self.fc_iou = nn.Linear(fc_channels if num_fcs else conv_channels * pooled * pooled,
                                num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.kaiming_uniform_(m.weight, a=1)
                nn.init.zeros_(m.bias)
        nn.init.normal_(self.fc_iou.weight, std=0.01)
        nn.init.zeros_(self.fc_iou.bias)

    def forward(self, roi_feats: Tensor, mask_probs: Tensor) -> Tensor:
        """Predict the mask IoU of every class.

        Args:
            roi_feats: (R, C_in, S, S) the mask head's RoI features.
            mask_probs: (R, 2S, 2S) predicted mask probabilities of each RoI's class; detached,
                so the IoU regression does not reshape the masks.

        Returns:
            (R, num_classes) predicted IoUs.
        """
        pooled = F.max_pool2d(mask_probs.detach()[:, None], kernel_size=2, stride=2)
        x = self.convs(torch.cat([roi_feats, pooled.to(roi_feats.dtype)], dim=1))
        return self.fc_iou(self.fcs(x.flatten(1)))

    def select(self, iou_pred: Tensor, labels: Tensor) -> Tensor:
        """(R, num_classes) -> (R,) the IoU of each RoI's class."""
        return iou_pred[torch.arange(labels.numel(), device=labels.device), labels]

    def loss_by_outputs(
        self, iou_pred: Tensor, labels: Tensor, targets: Tensor
    ) -> dict[str, Tensor]:
        """``loss_mask_iou``: weighted mean squared error on the positives.

        Args:
            iou_pred: (P, num_classes) predictions for the positive RoIs.
            labels: (P,) their GT classes.
            targets: (P,) IoU targets from :func:`mask_iou_targets`.
        """
        if labels.numel() == 0:
            return {"loss_mask_iou": iou_pred.sum() * 0.0}
        pred = self.select(iou_pred, labels).float()
        loss = F.mse_loss(pred, targets.to(pred.dtype))
        return {"loss_mask_iou": self.loss_weight * loss}

    def predict_by_outputs(self, iou_pred: Tensor, labels: Tensor) -> Tensor:
        """(R, num_classes), (R,) -> (R,) predicted IoU of each detection's class, in [0, 1]."""
        return self.select(iou_pred, labels).clamp(0.0, 1.0)
