"""How a one-stage head turns its scored candidates into detections at test time.

Every one-stage head (RetinaNet, FCOS, ATSS, GFL, FoveaBox, SSD, RepPoints, GA-RetinaNet, ...)
takes the same flat keyword arguments and builds one :class:`DetectionSettings` from them::

    bbox_head=dict(type="FCOSHead", ..., score_thr=0.05, nms_pre=1000, nms_iou_thr=0.5,
                   max_per_img=100,
                   nms=dict(type="soft_nms", iou_thr=0.3, sigma=0.5, min_score=1e-3))

``nms`` (see ``task_modules.nms``) replaces plain NMS at ``nms_iou_thr``; it is built, and a bad
key fails, when the head is constructed. The heads show every field as an attribute
(:class:`WithDetectionSettings`; SSD names ``nms_pre`` ``topk``), so ``head.score_thr = 0.0``
after construction is checked like a config value and takes effect at the next prediction.
RPN-like heads use ``ProposalSettings`` instead.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any

from detbox.models.task_modules.nms import build_nms
from detbox.typecheck import Positive, Probability, Range, check_values

__all__ = ["DetectionSettings", "WithDetectionSettings"]

_FIELDS = ("score_thr", "nms_pre", "nms_iou_thr", "max_per_img", "nms")


@dataclass(frozen=True)
class DetectionSettings:
    """A one-stage head's test-time selection: threshold, top-k, NMS, and how many to keep.

    Attributes:
        score_thr: (prior, class) scores at or below this are dropped first.
        nms_pre: candidates kept by score before NMS (``-1``: all): per level in
            ``select_detections``, per class over all levels in ``select_per_class_detections``
            (SSD's ``topk``).
        nms_iou_thr: class-wise plain-NMS IoU threshold (when ``nms`` is None).
        max_per_img: detections kept per image after NMS.
        nms: ``TASK_UTILS`` config (or object) of the suppressor, e.g.
            ``dict(type='soft_nms', iou_thr=0.3, sigma=0.5, min_score=1e-3, method='linear')``;
            it replaces plain NMS at ``nms_iou_thr``. None keeps plain NMS.
        suppress: the built suppressor, ``suppress(boxes, scores, groups, max_num) ->
            (keep, scores)``: ``nms``'s, or plain NMS at ``nms_iou_thr``.
    """

    score_thr: Annotated[float, Probability] = 0.05
    nms_pre: Annotated[int, Range(ge=-1)] = 1000
    nms_iou_thr: Annotated[float, Probability] = 0.5
    max_per_img: Annotated[int, Positive] = 100
    nms: Mapping[str, Any] | Any | None = None
    suppress: Any = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        values = {name: getattr(self, name) for name in _FIELDS}
        check_values(type(self), values, where="DetectionSettings")
        object.__setattr__(self, "suppress", build_nms(self.nms, iou_thr=self.nms_iou_thr))

    def replace(self, **changes: Any) -> DetectionSettings:
        """A copy with ``changes`` (checked, its suppressor rebuilt)."""
        return dataclasses.replace(self, **changes)


class _Setting:
    """A head attribute that reads one field of the head's ``test_settings`` and, when
    assigned, replaces ``test_settings`` by a copy with the new value."""

    def __init__(self, field_name: str | None = None) -> None:
        self.field_name = field_name

    def __set_name__(self, owner: type, name: str) -> None:
        self.field_name = self.field_name or name

    def __get__(self, head: Any, owner: type | None = None) -> Any:
        if head is None:
            return self
        return getattr(head.test_settings, self.field_name)

    def __set__(self, head: Any, value: Any) -> None:
        head.test_settings = head.test_settings.replace(**{self.field_name: value})


class WithDetectionSettings:
    """The fields of a head's ``test_settings`` (a :class:`DetectionSettings` the head sets in
    its constructor) as attributes: ``head.nms_iou_thr`` reads it, ``head.nms_iou_thr = 0.6``
    replaces the settings by a checked copy. Listed first among a head's bases::

        class FCOSHead(WithDetectionSettings, DenseHead, nn.Module): ...
    """

    test_settings: DetectionSettings
    score_thr = _Setting()
    nms_pre = _Setting()
    nms_iou_thr = _Setting()
    max_per_img = _Setting()
    nms = _Setting()

    @staticmethod
    def setting(field_name: str) -> Any:
        """Another attribute name for a field, e.g. SSD's ``topk = setting('nms_pre')``."""
        return _Setting(field_name)
