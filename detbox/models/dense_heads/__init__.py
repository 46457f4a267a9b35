"""Dense heads: per-location predictions on every feature level."""

from detbox.models.dense_heads.retina_head import RetinaHead
from detbox.models.dense_heads.rpn_head import RPNHead

__all__ = ["RPNHead", "RetinaHead"]
