"""The base of the dense heads: losses and predictions as functions of the forward outputs."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor

from detbox.structures import DetSample, Instances

__all__ = ["DenseHead"]


class DenseHead:
    """A dense (one-stage or region proposal) head's ``loss``, ``predict`` and ``anchors``, a
    mixin listed before ``nn.Module`` among the head's bases (the head stays one level below
    ``nn.Module``)::

        class RetinaHead(WithDetectionSettings, DenseHead, nn.Module): ...

    ``forward(feats)`` returns a tuple of outputs, each a list with one (B, ., H_l, W_l) map per
    pyramid level; ``loss_by_outputs(*outputs, samples)`` turns them into the training losses and
    ``predict_by_outputs(*outputs, samples)`` into detections in image coordinates. Keeping the
    two apart lets a detector run the forward once and use its outputs twice (a two-stage
    detector's proposals during training) or outside the head (an exported graph's outputs).
    """

    def loss(self, feats: Sequence[Tensor], samples: Sequence[DetSample]) -> dict[str, Tensor]:
        """The training losses of a batch: ``loss_by_outputs(*self(feats), samples)``."""
        return self.loss_by_outputs(*self(feats), samples)

    def predict(self, feats: Sequence[Tensor], samples: Sequence[DetSample]) -> list[Instances]:
        """The detections of a batch: ``predict_by_outputs(*self(feats), samples)``."""
        return self.predict_by_outputs(*self(feats), samples)

    def anchors(self, cls_logits: Sequence[Tensor]) -> list[Tensor]:
        """An anchor-based head's (its ``anchor_generator``'s) anchors for maps of the sizes of
        the (B, ., H_l, W_l) ``cls_logits``: one (H_l * W_l * A, 4) tensor per level,
        location-major (the A anchors of a location, then the next location's)."""
        sizes = [x.shape[-2:] for x in cls_logits]
        return self.anchor_generator.grid_anchors(sizes, device=cls_logits[0].device)
