"""RetinaNet head with norms separate per level (NAS-FPN, Ghiasi et al., 2019)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated, Any

from torch import Tensor, nn

from detbox.errors import ConfigError
from detbox.models.dense_heads.conv_tower import LevelNormTower
from detbox.models.dense_heads.retina_head import (
    DEFAULT_ANCHOR_GENERATOR,
    DEFAULT_ASSIGNER,
    DEFAULT_BOX_CODER,
    DEFAULT_LOSS_BBOX,
    DEFAULT_LOSS_CLS,
    RetinaHead,
)
from detbox.registry import MODELS
from detbox.typecheck import Positive, Probability, Range

__all__ = ["RetinaSepBNHead"]


@MODELS.register
class RetinaSepBNHead(RetinaHead):
    """RetinaNet's head whose tower convs are shared over the levels but each level keeps its
    own norm layers (BN, trained with batch statistics in NAS-FPN's recipe); the class and box
    output convs are shared as in ``RetinaHead``. MMDetection's name and defaults.

    Args:
        num_ins: pyramid levels the head sees (one set of norms each); None takes the anchor
            generator's number of levels (5, P3-P7, by default).
        norm: a ``build_norm`` name after each tower conv (``'BN'``, the paper's).
        stacked_convs: tower convs (at least 1).
        Others: as ``RetinaHead``.
    """

    def __init__(
        self,
        *,
        num_classes: Annotated[int, Positive],
        in_channels: Annotated[int, Positive],
        num_ins: Annotated[int, Positive] | None = None,
        feat_channels: Annotated[int, Positive] = 256,
        stacked_convs: Annotated[int, Positive] = 4,
        norm: str = "BN",
        prior_prob: Annotated[float, Range(gt=0, lt=1)] = 0.01,
        anchor_generator: Mapping[str, Any] | Any = DEFAULT_ANCHOR_GENERATOR,
        assigner: Mapping[str, Any] | Any = DEFAULT_ASSIGNER,
        box_coder: Mapping[str, Any] | Any = DEFAULT_BOX_CODER,
        loss_cls: Mapping[str, Any] | nn.Module = DEFAULT_LOSS_CLS,
        loss_bbox: Mapping[str, Any] | nn.Module = DEFAULT_LOSS_BBOX,
        reg_decoded_bbox: bool = False,
        score_thr: Annotated[float, Probability] = 0.05,
        nms_pre: Annotated[int, Range(ge=-1)] = 1000,
        nms_iou_thr: Annotated[float, Probability] = 0.5,
        max_per_img: Annotated[int, Positive] = 100,
        nms: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(
            num_classes=num_classes, in_channels=in_channels, feat_channels=feat_channels,
            stacked_convs=stacked_convs, norm=norm, prior_prob=prior_prob,
            anchor_generator=anchor_generator, assigner=assigner, box_coder=box_coder,
            loss_cls=loss_cls, loss_bbox=loss_bbox, reg_decoded_bbox=reg_decoded_bbox,
            score_thr=score_thr, nms_pre=nms_pre, nms_iou_thr=nms_iou_thr,
            max_per_img=max_per_img, nms=nms,
        )
        levels = self.anchor_generator.num_levels
        if num_ins is not None and num_ins != levels:
            raise ConfigError(f"RetinaSepBNHead: num_ins={num_ins} but the anchor generator has "
                              f"{levels} levels (strides {self.anchor_generator.strides}); "
                              f"leave num_ins out to use {levels}")

    @property
    def num_ins(self) -> int:
        """Pyramid levels the head has norms for: the anchor generator's."""
        return self.anchor_generator.num_levels

    def _towers(self, in_channels: int, feat_channels: int, stacked_convs: int,
                norm: str | None) -> tuple[nn.Module, nn.Module, int]:
        """Two :class:`LevelNormTower`, one norm per anchor level."""
        towers = [LevelNormTower(in_channels, feat_channels, stacked_convs, norm, self.num_ins)
                  for _ in range(2)]
        return towers[0], towers[1], feat_channels

    def forward(self, feats: Sequence[Tensor]) -> tuple[list[Tensor], list[Tensor]]:
        """Raw outputs per level, as :meth:`RetinaHead.forward`.

        Args:
            feats: ``num_ins`` (B, in_channels, H_l, W_l) maps, finest first.
        """
        if len(feats) != self.num_ins:
            raise ValueError(f"RetinaSepBNHead has norms for num_ins={self.num_ins} levels, "
                             f"got {len(feats)} feature maps; set num_ins to the neck's "
                             f"number of outputs")
        cls_logits = [self.cls_logits(self.cls_convs(x, level)) for level, x in enumerate(feats)]
        box_deltas = [self.box_deltas(self.reg_convs(x, level)) for level, x in enumerate(feats)]
        return cls_logits, box_deltas
