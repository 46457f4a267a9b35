"""HTC's semantic segmentation branch: pyramid levels fused at one scale, a segmentation loss
on the image's stuff/semantic map, and a feature map whose RoI crops enrich the RoI features."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from detbox.errors import DetboxError
from detbox.registry import MODELS
from detbox.structures import DetSample

__all__ = ["FusedSemanticHead", "semantic_targets"]

IGNORE_INDEX = 255


def _conv_relu(in_ch: int, out_ch: int, kernel: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_ch, out_ch, kernel, padding=kernel // 2),
                         nn.ReLU(inplace=True))


def semantic_targets(samples: Sequence[DetSample], size: Sequence[int], stride: int) -> Tensor:
    """The batch's semantic maps, padded with 255 (ignored) to the padded batch and sampled
    (nearest) at the head's resolution.

    Args:
        samples: per image, with ``gt_sem_seg`` (h, w) in transformed-image pixels.
        size: ``(H', W')`` of the head's output.
        stride: pixels per output cell (the padded batch is ``H' * stride`` high).

    Returns:
        (B, H', W') int64 labels, 255 where ignored.
    """
    height, width = int(size[0]) * stride, int(size[1]) * stride
    maps = []
    for sample in samples:
        seg = sample.gt_sem_seg
        if seg is None:
            raise DetboxError(
                "the semantic head needs a semantic map per training image, but a sample has "
                "none: give the dataset a seg_prefix and load it with "
                "LoadAnnotations(with_seg=True), or drop roi_head.semantic_head"
            )
        seg = seg[:height, :width].float()
        maps.append(F.pad(seg, (0, width - seg.shape[-1], 0, height - seg.shape[-2]),
                          value=IGNORE_INDEX))
    stacked = torch.stack(maps)[:, None]
    return F.interpolate(stacked, size=tuple(size), mode="nearest")[:, 0].long()


@MODELS.register
class FusedSemanticHead(nn.Module):
    """Fuse the pyramid at one level, segment the image, and embed the fused map.

    Each level passes a 1x1 conv after being resized (bilinear) to the fusion level; the sum
    passes ``num_convs`` 3x3 convs, then a 1x1 classifier (the segmentation logits) and a 1x1
    embedding (the semantic feature map).

    Args:
        num_seg_classes: semantic classes (183 for COCO-stuff's stuff+thing maps); named apart
            from the detector's ``num_classes``, which the dataset's categories fill.
        in_channels: channels of the pyramid levels.
        num_levels: pyramid levels read, finest first.
        fusion_level: the level everything is fused at (1: stride 8 for P2-P6).
        num_convs: 3x3 convs after the fusion.
        conv_channels: channels of the fused map and the convs.
        out_channels: channels of the semantic feature map (those of the RoI features it is
            added to).
        loss_weight: weight of the segmentation loss.
        ignore_index: label without loss (the padding).
    """

    def __init__(
        self,
        *,
        num_seg_classes: int = 183,
        in_channels: int = 256,
        num_levels: int = 5,
        fusion_level: int = 1,
        num_convs: int = 4,
        conv_channels: int = 256,
        out_channels: int = 256,
        loss_weight: float = 0.2,
        ignore_index: int = IGNORE_INDEX,
    ) -> None:
        super().__init__()
        if not 0 <= fusion_level < num_levels:
            raise ValueError(f"fusion_level must be in [0, {num_levels}), got {fusion_level}")
        self.num_seg_classes = num_seg_classes
        self.num_levels = num_levels
        self.fusion_level = fusion_level
        self.loss_weight = float(loss_weight)
        self.ignore_index = ignore_index
        self.lateral_convs = nn.ModuleList(
            [_conv_relu(in_channels, conv_channels, 1) for _ in range(num_levels)])
        self.convs = nn.Sequential(
            *[_conv_relu(conv_channels, conv_channels, 3) for _ in range(num_convs)])
        self.conv_embedding = _conv_relu(conv_channels, out_channels, 1)
        self.conv_logits = nn.Conv2d(conv_channels, num_seg_classes, 1)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)

    def forward(self, feats: Sequence[Tensor]) -> tuple[Tensor, Tensor]:
        """Pyramid levels (B, C, H_l, W_l), finest first -> ``seg_logits`` (B, K, H_f, W_f)
        and ``semantic_feat`` (B, out_channels, H_f, W_f) at the fusion level."""
        if len(feats) < self.num_levels:
            raise ValueError(f"the semantic head reads {self.num_levels} levels, got {len(feats)}")
        size = feats[self.fusion_level].shape[-2:]
        x = self.lateral_convs[self.fusion_level](feats[self.fusion_level])
        for level in range(self.num_levels):
            if level == self.fusion_level:
                continue
            feat = F.interpolate(feats[level], size=size, mode="bilinear", align_corners=True)
            x = x + self.lateral_convs[level](feat)
        x = self.convs(x)
        return self.conv_logits(x), self.conv_embedding(x)

    def loss_by_outputs(
        self, seg_logits: Tensor, samples: Sequence[DetSample], stride: int
    ) -> dict[str, Tensor]:
        """``loss_semantic_seg``: per-pixel softmax cross-entropy, padding ignored.

        Args:
            seg_logits: (B, K, H', W') from :meth:`forward`.
            samples: per image, with ``gt_sem_seg`` (h, w) uint8.
            stride: pixels per cell of ``seg_logits`` (the fusion level's stride).
        """
        targets = semantic_targets(samples, seg_logits.shape[-2:], stride)
        if not (targets != self.ignore_index).any():
            return {"loss_semantic_seg": seg_logits.sum() * 0.0}
        loss = F.cross_entropy(seg_logits.float(), targets, ignore_index=self.ignore_index)
        return {"loss_semantic_seg": loss * self.loss_weight}
