"""A loss: subclass WeightedLoss and define the element-wise loss; weighting is shared."""

from __future__ import annotations

import math

import torch.nn.functional as F
from torch import Tensor

from detbox.models.losses.utils import WeightedLoss
from detbox.registry import MODELS


@MODELS.register
class LogCoshLoss(WeightedLoss):
    """``log(cosh(pred - target))`` per coordinate: quadratic near 0, linear far away.

    Args:
        loss_weight: scale of the reduced loss.
        reduction: ``'mean'``, ``'sum'`` or ``'none'``.
    """

    def elementwise(self, pred: Tensor, target: Tensor) -> Tensor:
        diff = pred - target
        return diff + F.softplus(-2 * diff) - math.log(2)  # log(cosh(x)), stable for large |x|
