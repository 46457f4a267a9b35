"""WIDER FACE evaluation: AP of the easy, medium and hard settings, as the official tool does it.

The official ground truth (``eval_tools/ground_truth``) is ``wider_face_val.mat`` (per image
its event, name and face boxes ``x, y, w, h``) and ``wider_<setting>_val.mat`` (per image the
1-based indices of the faces that count in that setting). Faces that do not count are
ignored: a detection matching one is neither a true nor a false positive. The steps follow the
official evaluation (``wider_eval.m`` and its Python port):

1. scores are normalised over the whole split to ``[0, 1]`` (min-max; all equal: all 1);
2. per image, detections in decreasing score order are matched to the face they overlap most
   (IoU with the official ``+1`` pixel convention), a match needing IoU >= 0.5; a face counts
   as found from the first detection that matches it;
3. at each of ``num_thresholds`` score thresholds ``1 - (t + 1) / num_thresholds`` the image
   adds its number of detections above the threshold (those matching an ignored face left
   out) and of faces found by them;
4. precision and recall are these sums over the split (recall over the faces that count), and
   AP is the all-points area under that curve (VOC 2010 style).

Reading the ``.mat`` files needs scipy.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from detbox.errors import ConfigError, DatasetError
from detbox.evaluation.voc_metric import average_precision
from detbox.structures import DetSample, Instances

__all__ = ["WIDER_SETTINGS", "WIDERFaceMetric", "WiderFaceGT", "image_pr", "read_wider_face_gt",
           "wider_face_ap"]

WIDER_SETTINGS = ("easy", "medium", "hard")


class WiderFaceGT:
    """The official ground truth of one split.

    Attributes:
        boxes: ``{image name: (G, 4) float x, y, w, h}`` (name without extension).
        counted: ``{setting: {image name: (G,) bool}}``, True for the faces that count.
    """

    def __init__(self, boxes: dict[str, np.ndarray], counted: dict[str, dict[str, np.ndarray]]):
        self.boxes, self.counted = boxes, counted


def _cells(value: Any) -> list[Any]:
    return list(np.asarray(value, dtype=object).ravel())


def _text(value: Any) -> str:
    return str(np.asarray(value).ravel()[0])


def read_wider_face_gt(gt_dir: str | os.PathLike, split: str = "val") -> WiderFaceGT:
    """Read ``wider_face_<split>.mat`` and ``wider_{easy,medium,hard}_<split>.mat``.

    Raises:
        DatasetError: a missing file, or one whose lists do not line up.
    """
    try:
        from scipy.io import loadmat
    except ImportError:  # pragma: no cover - scipy is a dependency of the test environment
        raise ConfigError("the WIDER FACE evaluation reads .mat files with scipy "
                          "(pip install scipy)") from None
    gt_dir = Path(gt_dir)

    def load(name: str) -> dict[str, Any]:
        path = gt_dir / name
        if not path.is_file():
            raise DatasetError(f"{path}: WIDER FACE ground-truth file not found (the official "
                               "eval_tools/ground_truth folder)")
        return loadmat(path)

    main = load(f"wider_face_{split}.mat")
    names = [[_text(n) for n in _cells(files)] for files in _cells(main["file_list"])]
    boxes_of = [[np.asarray(b, dtype=np.float64).reshape(-1, 4) for b in _cells(event)]
                for event in _cells(main["face_bbx_list"])]
    boxes = {n: b for ns, bs in zip(names, boxes_of, strict=True)
             for n, b in zip(ns, bs, strict=True)}
    counted: dict[str, dict[str, np.ndarray]] = {}
    for setting in WIDER_SETTINGS:
        lists = _cells(load(f"wider_{setting}_{split}.mat")["gt_list"])
        if len(lists) != len(names):
            raise DatasetError(f"{gt_dir}: wider_{setting}_{split}.mat has {len(lists)} events, "
                               f"wider_face_{split}.mat {len(names)}")
        counted[setting] = {}
        for event_names, event_lists in zip(names, lists, strict=True):
            for name, keep in zip(event_names, _cells(event_lists), strict=True):
                flags = np.zeros(len(boxes[name]), dtype=bool)
                flags[np.asarray(keep, dtype=np.int64).ravel() - 1] = True
                counted[setting][name] = flags
    return WiderFaceGT(boxes, counted)


def _overlaps(boxes: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """(D, G) IoU of ``x, y, w, h`` boxes, with ``x2 = x + w`` and the ``+1`` pixel areas."""
    a = np.concatenate([boxes[:, :2], boxes[:, :2] + boxes[:, 2:4]], axis=1)
    b = np.concatenate([gt[:, :2], gt[:, :2] + gt[:, 2:4]], axis=1)
    iw = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]) + 1
    ih = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]) + 1
    inter = np.where((iw > 0) & (ih > 0), iw * ih, 0.0)
    area_a = (a[:, 2] - a[:, 0] + 1) * (a[:, 3] - a[:, 1] + 1)
    area_b = (b[:, 2] - b[:, 0] + 1) * (b[:, 3] - b[:, 1] + 1)
    return inter / (area_a[:, None] + area_b[None, :] - inter)


def image_pr(
    dets: np.ndarray, gt: np.ndarray, counted: np.ndarray, iou_thr: float = 0.5
) -> tuple[np.ndarray, np.ndarray]:
    """Match one image's detections (sorted by decreasing score) to its faces.

    Args:
        dets: (D, 4) ``x, y, w, h``; gt: (G, 4) ``x, y, w, h``; counted: (G,) bool.

    Returns:
        ``(found, proposal)``, both (D,): faces that count found by detections ``0..d``, and
        whether detection ``d`` is a proposal (False when it matches an ignored face).
    """
    if len(dets) == 0 or len(gt) == 0:
        return np.zeros(len(dets), dtype=np.int64), np.ones(len(dets), dtype=bool)
    ious = _overlaps(dets, gt)
    best, matched = ious.argmax(axis=1), ious.max(axis=1) >= iou_thr
    proposal = ~(matched & ~counted[best])
    hits = np.flatnonzero(matched & counted[best])
    first = hits[np.unique(best[hits], return_index=True)[1]]
    new_face = np.zeros(len(dets), dtype=np.int64)
    new_face[first] = 1
    return np.cumsum(new_face), proposal


def _image_curve(scores: np.ndarray, found: np.ndarray, proposal: np.ndarray,
                 thresholds: np.ndarray) -> np.ndarray:
    """(T, 2) detections counted and faces found above each threshold, for one image."""
    above = np.searchsorted(-scores, -thresholds, side="right")  # scores >= threshold
    proposals = np.concatenate([[0], np.cumsum(proposal)])[above]
    faces = np.concatenate([[0], found])[above]
    return np.stack([proposals, faces], axis=1).astype(np.float64)


def wider_face_ap(
    detections: Mapping[str, np.ndarray],
    gt: WiderFaceGT,
    setting: str,
    *,
    iou_thr: float = 0.5,
    num_thresholds: int = 1000,
) -> float:
    """AP of one setting; ``detections[name]`` is (D, 5) ``x, y, w, h, score``.

    Images without detections add nothing but their faces; detections of images not in the
    ground truth are ignored.
    """
    if setting not in WIDER_SETTINGS:
        raise ConfigError(f"WIDER FACE setting must be one of {WIDER_SETTINGS}, got '{setting}'")
    dets = {n: np.asarray(d, dtype=np.float64).reshape(-1, 5) for n, d in detections.items()
            if n in gt.boxes}
    scores = np.concatenate([d[:, 4] for d in dets.values()] + [np.zeros(0)])
    low, high = (scores.min(), scores.max()) if len(scores) else (0.0, 1.0)
    thresholds = 1 - (np.arange(num_thresholds) + 1) / num_thresholds
    curve = np.zeros((num_thresholds, 2))
    num_faces = 0
    for name, counted in gt.counted[setting].items():
        num_faces += int(counted.sum())
        d = dets.get(name, np.zeros((0, 5)))
        if len(d) == 0 or len(gt.boxes[name]) == 0:
            continue
        d = d[np.argsort(-d[:, 4], kind="stable")]
        normed = (d[:, 4] - low) / (high - low) if high > low else np.ones(len(d))
        found, proposal = image_pr(d[:, :4], gt.boxes[name], counted, iou_thr)
        curve += _image_curve(normed, found, proposal, thresholds)
    if num_faces == 0:
        return -1.0
    precision = np.divide(curve[:, 1], curve[:, 0], out=np.zeros(num_thresholds),
                          where=curve[:, 0] > 0)
    return average_precision(curve[:, 1] / num_faces, precision, "area")


class WIDERFaceMetric:
    """WIDER FACE easy / medium / hard AP over a stream of predictions.

    Args:
        gt_dir: the folder of the official ``.mat`` ground truth.
        split: the ``.mat`` files' split (``val``).
        iou_thr: IoU a match needs (official: 0.5).
        num_thresholds: score thresholds of the precision/recall curve (official: 1000).
    """

    def __init__(
        self,
        gt_dir: str | os.PathLike,
        *,
        split: str = "val",
        iou_thr: float = 0.5,
        num_thresholds: int = 1000,
    ) -> None:
        if not 0.0 < float(iou_thr) <= 1.0 or int(num_thresholds) < 1:
            raise ConfigError("WIDERFaceMetric needs 0 < iou_thr <= 1 and num_thresholds >= 1, "
                              f"got {iou_thr} and {num_thresholds}")
        self.gt = read_wider_face_gt(gt_dir, split)
        self.iou_thr, self.num_thresholds = float(iou_thr), int(num_thresholds)
        self.results: dict[str, float] = {}
        self._detections: dict[str, np.ndarray] = {}
        self._coverage = "nothing evaluated yet"

    def reset(self) -> None:
        """Forget the images seen so far."""
        self._detections = {}

    def process(self, samples: Sequence[DetSample], predictions: Sequence[Instances]) -> None:
        """Add a batch: predictions in original image coordinates (label 0, face).

        An image is named by its file name without extension, as in the ``.mat`` files.
        """
        for sample, pred in zip(samples, predictions, strict=True):
            name = Path(sample.file_name).stem
            if name not in self.gt.boxes:
                raise DatasetError(f"{sample.file_name}: not an image of the WIDER FACE ground "
                                   "truth; check eval_gt_dir and the split")
            boxes = pred.boxes.detach().cpu().double().numpy().reshape(-1, 4)
            scores = (np.ones(len(boxes)) if pred.scores is None
                      else pred.scores.detach().cpu().double().numpy())
            self._detections[name] = np.concatenate(
                [boxes[:, :2], boxes[:, 2:] - boxes[:, :2], scores[:, None]], axis=1)

    def evaluate(self) -> dict[str, float]:
        """``wider_face_{easy,medium,hard}_AP`` of everything added since the last reset.

        Every image of the ground truth counts: one without predictions has its faces missed.
        """
        self.results = {
            f"wider_face_{s}_AP": wider_face_ap(self._detections, self.gt, s, iou_thr=self.iou_thr,
                                                num_thresholds=self.num_thresholds)
            for s in WIDER_SETTINGS
        }
        seen, total = len(self._detections), len(self.gt.boxes)
        self._coverage = f"{seen} of {total} images predicted"
        self.reset()
        return dict(self.results)

    def report(self) -> str:
        """The three APs of the last :meth:`evaluate`."""
        lines = [f"WIDER FACE AP (IoU {self.iou_thr:g}, {self._coverage})"]
        lines += [f"{s:<6}  {self.results.get(f'wider_face_{s}_AP', float('nan')):.4f}"
                  for s in WIDER_SETTINGS]
        return "\n".join(lines)
