"""TridentNet's scale-aware training: each branch learns only the objects of its scale range.

A box's scale is ``sqrt(w * h)`` in the (resized) image the model sees. Branch ``k`` with range
``(lo, hi)`` keeps the GT boxes with ``lo <= scale <= hi``; the others become ignored regions
for that branch, so anchors and RoIs on them are neither positives nor negatives (rather than
being pushed to background). ``hi = -1`` means no upper bound.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import torch
from torch import Tensor

from detbox.errors import ConfigError
from detbox.structures import DetSample, Instances

__all__ = [
    "box_scales", "branch_samples", "check_scale_ranges", "in_scale_range", "keep_in_range",
]


def check_scale_ranges(ranges: Sequence[Sequence[float]], num_branches: int) -> tuple:
    """``ranges`` as a tuple of ``(lo, hi)`` floats, one per branch; ConfigError if malformed."""
    ranges = tuple(tuple(float(v) for v in r) for r in ranges)
    if len(ranges) != num_branches:
        raise ConfigError(f"need one scale range per trident branch ({num_branches}), got "
                          f"{len(ranges)}: {ranges}")
    for lo_hi in ranges:
        if len(lo_hi) != 2 or lo_hi[0] < 0 or not (lo_hi[1] == -1 or lo_hi[1] > lo_hi[0]):
            raise ConfigError(f"a scale range is (lo, hi) with 0 <= lo < hi, or hi = -1 for no "
                              f"upper bound; got {lo_hi}")
    return ranges


def box_scales(boxes: Tensor) -> Tensor:
    """(N, 4) xyxy boxes -> (N,) ``sqrt(w * h)`` (0 for degenerate boxes)."""
    wh = (boxes[:, 2:] - boxes[:, :2]).clamp(min=0)
    return (wh[:, 0] * wh[:, 1]).sqrt()


def in_scale_range(boxes: Tensor, scale_range: Sequence[float]) -> Tensor:
    """(N,) bool: which of the (N, 4) xyxy boxes have ``lo <= sqrt(w * h) <= hi``."""
    lo, hi = scale_range
    scales = box_scales(boxes)
    keep = scales >= lo
    return keep if hi == -1 else keep & (scales <= hi)


def branch_samples(
    samples: Sequence[DetSample], ranges: Sequence[Sequence[float]],
) -> list[DetSample]:
    """The samples of every branch, branch-major (``k * B + i``: branch ``k``, image ``i``).

    Branch ``k`` sees image ``i``'s GT inside ``ranges[k]``; the rest of its GT boxes are
    appended to ``ignored_boxes``.

    Args:
        samples: B DetSamples with GT in image coordinates.
        ranges: one ``(lo, hi)`` per branch.

    Returns:
        ``len(ranges) * B`` DetSamples (images without GT are repeated unchanged).
    """
    out = []
    for scale_range in ranges:
        for sample in samples:
            if sample.gt is None or len(sample.gt) == 0:
                out.append(sample)
                continue
            keep = in_scale_range(sample.gt.boxes, scale_range)
            dropped = sample.gt.boxes[~keep].to(sample.ignored_boxes)
            ignored = torch.cat([sample.ignored_boxes.reshape(-1, 4), dropped])
            out.append(replace(sample, gt=sample.gt[keep], ignored_boxes=ignored))
    return out


def keep_in_range(instances: Sequence[Instances], ranges: Sequence[Sequence[float]],
                  batch_size: int) -> list[Instances]:
    """Branch-major per-image Instances -> each filtered to its branch's range of box scales."""
    return [inst[in_scale_range(inst.boxes, ranges[index // batch_size])]
            for index, inst in enumerate(instances)]
