"""Typed containers passed between the data pipeline, the heads and the evaluators."""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any

import torch
from torch import Tensor

__all__ = ["Instances", "DetSample", "ImageBatch"]


@dataclass
class Instances:
    """A set of objects in one image: ground truth, proposals or detections.

    Attributes:
        boxes: (N, 4) float, absolute ``x1, y1, x2, y2`` pixels.
        labels: (N,) int64 contiguous class indices ``0 .. num_classes - 1``.
        scores: (N,) float confidences (detections and proposals only).
        masks: (N, H, W) masks over the whole image: bool/uint8 for ground truth and final
            detections, float probabilities while still inside a model.
        mask_iou: (N,) float predicted mask IoU (Mask Scoring R-CNN detections only).
    """

    boxes: Tensor
    labels: Tensor
    scores: Tensor | None = None
    masks: Tensor | None = None
    mask_iou: Tensor | None = None

    @classmethod
    def empty(cls, device: torch.device | str = "cpu", with_scores: bool = False) -> Instances:
        return cls(
            boxes=torch.zeros((0, 4), dtype=torch.float32, device=device),
            labels=torch.zeros((0,), dtype=torch.int64, device=device),
            scores=torch.zeros((0,), dtype=torch.float32, device=device) if with_scores else None,
        )

    def __len__(self) -> int:
        return int(self.boxes.shape[0])

    def __getitem__(self, index: Any) -> Instances:
        """Select instances by an index, slice, bool mask or index tensor."""
        return replace(self, **{
            f.name: getattr(self, f.name)[index]
            for f in fields(self) if getattr(self, f.name) is not None
        })

    def to(self, device: torch.device | str) -> Instances:
        non_blocking = _to_accelerator(device)
        return replace(self, **{
            f.name: getattr(self, f.name).to(device, non_blocking=non_blocking)
            for f in fields(self) if getattr(self, f.name) is not None
        })

    def pin_memory(self) -> Instances:
        """A copy in page-locked host memory (the data loader's ``pin_memory``)."""
        return replace(self, **{
            f.name: getattr(self, f.name).pin_memory()
            for f in fields(self) if getattr(self, f.name) is not None
        })

    @staticmethod
    def cat(parts: list[Instances]) -> Instances:
        """Concatenate instance sets that carry the same fields."""
        if not parts:
            raise ValueError("Instances.cat needs at least one Instances")
        merged = {}
        for f in fields(Instances):
            values = [getattr(p, f.name) for p in parts]
            merged[f.name] = None if any(v is None for v in values) else torch.cat(values)
        return Instances(**merged)


@dataclass
class DetSample:
    """One image's metadata and ground truth on its way through the pipeline.

    Ground-truth boxes and masks are in the coordinates of the transformed image
    (``img_shape``); ``scale_factor`` and ``flip`` map predictions back to ``ori_shape``.
    ``gt_sem_seg``, when loaded, is the (H, W) uint8 semantic map in the same coordinates
    (255: no label, e.g. padding), for heads with a semantic branch (HTC).
    ``proposals`` are pre-computed proposals (``boxes``, ``scores``) in the same coordinates,
    for detectors without an RPN (Fast R-CNN), or None.
    """

    image_id: int
    file_name: str
    ori_shape: tuple[int, int]
    img_shape: tuple[int, int]
    scale_factor: tuple[float, float] = (1.0, 1.0)
    flip: str | None = None
    gt: Instances | None = None
    ignored_boxes: Tensor = field(default_factory=lambda: torch.zeros((0, 4)))
    extra: dict[str, Any] = field(default_factory=dict)
    gt_sem_seg: Tensor | None = None
    proposals: Instances | None = None

    def gt_or_empty(self, device: torch.device | str | None = None) -> Instances:
        """The ground truth (on ``device`` when given), or an empty set for an image without
        objects, so that heads and evaluators never special-case ``gt is None``."""
        if self.gt is None:
            return Instances.empty("cpu" if device is None else device)
        return self.gt if device is None else self.gt.to(device)

    def to(self, device: torch.device | str) -> DetSample:
        non_blocking = _to_accelerator(device)
        sem_seg = self.gt_sem_seg
        return replace(
            self,
            gt=self.gt.to(device) if self.gt is not None else None,
            ignored_boxes=self.ignored_boxes.to(device, non_blocking=non_blocking),
            gt_sem_seg=None if sem_seg is None else sem_seg.to(device, non_blocking=non_blocking),
            proposals=self.proposals.to(device) if self.proposals is not None else None,
        )

    def pin_memory(self) -> DetSample:
        """A copy whose tensors are in page-locked host memory."""
        return replace(
            self,
            gt=self.gt.pin_memory() if self.gt is not None else None,
            ignored_boxes=self.ignored_boxes.pin_memory(),
            gt_sem_seg=self.gt_sem_seg.pin_memory() if self.gt_sem_seg is not None else None,
            proposals=self.proposals.pin_memory() if self.proposals is not None else None,
        )


@dataclass
class ImageBatch:
    """A padded batch of images with their samples.

    Attributes:
        images: (B, 3, H, W) float, normalized, zero-padded at the bottom and right so that
            H and W are multiples of the size divisor.
        samples: one DetSample per image; ``samples[i].img_shape`` is its unpadded size.
        skipped: images of this batch that could not be read (``detbox.data.skipping``
            ``UnreadableImage``), not in ``images``; evaluation leaves them out.
    """

    images: Tensor
    samples: list[DetSample]
    skipped: list[Any] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.samples)

    def pin_memory(self) -> ImageBatch:
        """A copy in page-locked host memory, so that ``to(cuda)`` overlaps with compute
        (called by the data loader with ``pin_memory=True``)."""
        return ImageBatch(images=self.images.pin_memory(),
                          samples=[s.pin_memory() for s in self.samples], skipped=self.skipped)

    def to(self, device: torch.device | str) -> ImageBatch:
        return ImageBatch(
            images=self.images.to(device, non_blocking=True),
            samples=[s.to(device) for s in self.samples],
            skipped=self.skipped,
        )


def _to_accelerator(device: torch.device | str) -> bool:
    """Host-to-accelerator copies may be asynchronous (they are ordered on the stream);
    copies to the CPU must not be, since the host would read them at once."""
    return torch.device(device).type != "cpu"
