"""Reordering the per-class rows of a classifier from torchvision's class layout to detbox's."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = ["pick_classes"]


def pick_classes(rows: Tensor, class_ids: Sequence[int] | None, groups: int = 1,
                 width: int = 1, background_last: bool = False) -> Tensor:
    """Reorder per-class blocks of rows from torchvision's layout to detbox's.

    ``rows`` holds ``groups`` groups (anchors) of ``K + 1`` classes, each class a block of
    ``width`` rows (4 for box deltas), background first. The result keeps the classes
    ``class_ids`` (default ``1 .. K``) in that order, plus background last when asked.
    """
    blocks = rows.reshape(groups, -1, width, *rows.shape[1:])
    ids = list(class_ids) if class_ids is not None else list(range(1, blocks.shape[1]))
    if background_last:
        ids.append(0)
    index = torch.tensor(ids, dtype=torch.long)
    return blocks[:, index].reshape(-1, *rows.shape[1:])
