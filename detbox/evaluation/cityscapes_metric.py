"""The official Cityscapes instance-level AP, computed by ``cityscapesscripts``.

The official evaluation reads predictions from files: per image a text file
``<city>_<seq>_<frame>_pred.txt`` whose lines are ``<mask png> <label id> <score>``, the mask
path relative to the text file, and one binary PNG per instance (nonzero = the instance). It
compares them with the ``gtFine/<split>/<city>/*_gtFine_instanceIds.png`` files and reports
AP (averaged over IoU 0.5:0.95) and AP at IoU 0.5, over the 8 thing classes.
``write_cityscapes_results`` writes that format; ``CityscapesMetric`` writes it image by image
and runs the official code when the ``cityscapesscripts`` package is installed (without it,
the files are still written and one warning names the package).
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import logging
import math
import os
import shutil
import tempfile
import types
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from detbox.errors import ConfigError, DatasetError
from detbox.structures import DetSample, Instances

__all__ = ["CityscapesMetric", "cityscapes_gt_dir", "cityscapes_stem", "write_cityscapes_results"]

logger = logging.getLogger(__name__)

_IMAGE_SUFFIX = "_leftImg8bit"
PACKAGE_MESSAGE = ("the official Cityscapes instance AP needs the 'cityscapesscripts' package "
                   "(pip install cityscapesscripts); it is left out")


def cityscapes_stem(file_name: str) -> str:
    """``aachen_000000_000019`` of ``aachen/aachen_000000_000019_leftImg8bit.png``."""
    stem = Path(file_name).stem
    return stem[: -len(_IMAGE_SUFFIX)] if stem.endswith(_IMAGE_SUFFIX) else stem


def cityscapes_gt_dir(img_dir: str | os.PathLike) -> Path:
    """``.../gtFine/<split>`` of an image folder ``.../leftImg8bit/<split>``.

    Raises:
        ConfigError: the folder is not in the official layout.
    """
    parts = list(Path(img_dir).parts)
    if "leftImg8bit" not in parts:
        raise ConfigError(f"{img_dir}: the Cityscapes metric expects the images in "
                          "leftImg8bit/<split> beside gtFine/<split>")
    index = len(parts) - 1 - parts[::-1].index("leftImg8bit")
    return Path(*parts[:index], "gtFine", *parts[index + 1:])


def write_cityscapes_results(
    out_dir: str | os.PathLike, stem: str, instances: Instances, label_ids: Sequence[int]
) -> Path:
    """Write one image's predictions in the official format; returns the text file.

    Writes ``out_dir/<stem>_pred.txt`` and ``out_dir/masks/<stem>_<k>.png`` (uint8, 255 inside
    the instance, 0 outside), the ``k``-th line naming the ``k``-th mask.

    Args:
        out_dir: the results folder (the one given to the official evaluation).
        stem: ``<city>_<seq>_<frame>``, which the evaluation matches to the ground truth.
        instances: detections in original image coordinates with ``labels``, ``scores`` and
            binary ``masks`` (N, H, W).
        label_ids: ``label_ids[label]`` is the Cityscapes label id (person 24, ...).
    """
    if len(instances) and instances.masks is None:
        raise ConfigError("the Cityscapes evaluation needs instance masks; use a mask model")
    out_dir = Path(out_dir)
    (out_dir / "masks").mkdir(parents=True, exist_ok=True)
    scores = instances.scores if instances.scores is not None else np.ones(len(instances))
    lines = []
    for k in range(len(instances)):
        name = f"masks/{stem}_{k}.png"
        mask = instances.masks[k].detach().cpu().numpy() != 0
        Image.fromarray(mask.astype(np.uint8) * 255).save(out_dir / name)
        label_id = int(label_ids[int(instances.labels[k])])
        lines.append(f"{name} {label_id} {float(scores[k]):.6f}\n")
    txt = out_dir / f"{stem}_pred.txt"
    txt.write_text("".join(lines), encoding="utf-8")
    return txt


class CityscapesMetric:
    """Official Cityscapes instance AP over a stream of mask predictions.

    Args:
        gt_dir: ``gtFine/<split>`` of the Cityscapes folder; the ground truth of
            ``<city>/<stem>_leftImg8bit.png`` is ``<city>/<stem>_gtFine_instanceIds.png`` there.
        label_ids: ``label_ids[label]`` is the Cityscapes label id of a contiguous label (the
            category ids of the converted COCO file).
        class_names: one name per label, for the per-class AP.
        results_dir: where the per-image files go (kept); None: a temporary folder, removed
            after :meth:`evaluate`.
    """

    def __init__(
        self,
        gt_dir: str | os.PathLike,
        *,
        label_ids: Sequence[int],
        class_names: Sequence[str] | None = None,
        results_dir: str | os.PathLike | None = None,
    ) -> None:
        self.gt_dir = Path(gt_dir)
        if not self.gt_dir.is_dir():
            raise ConfigError(f"{self.gt_dir}: Cityscapes ground-truth folder not found "
                              "(expected gtFine/<split>)")
        self.label_ids = [int(i) for i in label_ids]
        self.class_names = [str(n) for n in (class_names or self.label_ids)]
        self.results_dir = None if results_dir is None else Path(results_dir)
        self.available = importlib.util.find_spec("cityscapesscripts") is not None
        if not self.available:
            logger.warning(PACKAGE_MESSAGE)
        self.results: dict[str, Any] = {}
        self._dir: Path | None = None
        self._gt_files: dict[str, str] = {}

    def reset(self) -> None:
        """Forget the images seen so far (and remove a temporary results folder)."""
        if self._dir is not None and self.results_dir is None:
            shutil.rmtree(self._dir, ignore_errors=True)
        self._dir, self._gt_files = None, {}

    def process(self, samples: Sequence[DetSample], predictions: Sequence[Instances]) -> None:
        """Write the files of one batch; predictions in original image coordinates.

        Without ``cityscapesscripts`` nothing is written unless ``results_dir`` is given (to
        evaluate the files later elsewhere).
        """
        if not self.available and self.results_dir is None:
            self._gt_files.update({cityscapes_stem(s.file_name): "" for s in samples})
            return
        if self._dir is None:
            self._dir = self.results_dir or Path(tempfile.mkdtemp(prefix="cityscapes_results_"))
        for sample, instances in zip(samples, predictions, strict=True):
            stem = cityscapes_stem(sample.file_name)
            if stem in self._gt_files:
                continue
            gt = self.gt_dir / Path(sample.file_name).parent / f"{stem}_gtFine_instanceIds.png"
            if not gt.is_file():
                raise DatasetError(f"{gt}: ground truth of {sample.file_name} not found")
            self._gt_files[stem] = str(gt)
            write_cityscapes_results(self._dir, stem, instances, self.label_ids)

    def evaluate(self) -> dict[str, Any]:
        """Run the official evaluation on the files written since the last reset, then reset.

        Returns:
            ``cityscapes_AP`` (IoU 0.5:0.95), ``cityscapes_AP50`` and
            ``cityscapes_per_class`` (``{name: {"AP", "AP50"}}``, -1 for a class without
            ground truth); ``{}`` when ``cityscapesscripts`` is not installed.
        """
        if not self._gt_files:
            raise RuntimeError("CityscapesMetric.evaluate() called before process() saw any "
                               "image")
        try:
            if not self.available:
                logger.warning(PACKAGE_MESSAGE)
                self.results = {}
                return {}
            self.results = run_official_evaluation(self._dir, sorted(self._gt_files.values()))
        finally:
            self.reset()
        return _flatten(self.results, self.class_names, self.label_ids)

    def report(self) -> str:
        """The official per-class table of the last :meth:`evaluate`."""
        if not self.results:
            return "Cityscapes AP: not computed (" + PACKAGE_MESSAGE + ")"
        return self.results["table"]


def _flatten(results: dict[str, Any], names: list[str], label_ids: list[int]) -> dict:
    from cityscapesscripts.helpers.labels import id2label

    per_class = {}
    for name, label_id in zip(names, label_ids, strict=True):
        official = results["classes"].get(id2label[label_id].name, {})
        ap, ap50 = official.get("ap", math.nan), official.get("ap50%", math.nan)
        per_class[name] = {"AP": -1.0 if math.isnan(ap) else float(ap),
                           "AP50": -1.0 if math.isnan(ap50) else float(ap50)}
    return {"cityscapes_AP": float(results["allAp"]), "cityscapes_AP50": float(results["allAp50%"]),
            "cityscapes_per_class": per_class}


class _NumpyOfItsTime(types.ModuleType):
    """NumPy as the official evaluation module (written for NumPy 1) expects it.

    ``in1d`` is back (NumPy 2.4 removed it) and ``count_nonzero`` of a whole array gives a
    Python int again (the module writes those counts to JSON, which NumPy 2's integer scalars
    break).
    """

    def __getattr__(self, name: str) -> Any:
        return getattr(np, name)

    @staticmethod
    def in1d(values: Any, test: Any) -> np.ndarray:
        return np.isin(np.asarray(values).ravel(), test)

    @staticmethod
    def count_nonzero(values: Any, axis: Any = None) -> Any:
        count = np.count_nonzero(values, axis=axis)
        return int(count) if axis is None else count


def run_official_evaluation(results_dir: Path, gt_files: list[str]) -> dict[str, Any]:
    """``cityscapesscripts``' instance evaluation of ``results_dir`` against ``gt_files``.

    The official code keeps its settings in a module-level object, prints as it goes and
    writes ``matches.json`` and a ground-truth cache into the working directory; it runs here
    with its output captured, inside ``results_dir``. Written for NumPy 1, its module sees
    NumPy through ``_NumpyOfItsTime`` for the duration of the call.

    Returns:
        The official averages (``allAp``, ``allAp50%``, ``classes``) plus ``table``, its
        printed summary.
    """
    from cityscapesscripts.evaluation import evalInstanceLevelSemanticLabeling as official

    results_dir = Path(results_dir).resolve()
    args = official.args
    args.predictionPath, args.predictionWalk = str(results_dir), None
    args.gtInstancesFile = str(results_dir / "gtInstances.json")
    Path(args.gtInstancesFile).unlink(missing_ok=True)  # a cache of an earlier image set
    args.JSONOutput, args.quiet, args.colorized, args.csv = False, True, False, False
    gt_files = [str(Path(f).resolve()) for f in gt_files]
    numpy, official.np = official.np, _NumpyOfItsTime("numpy")
    printed = io.StringIO()
    try:
        with contextlib.chdir(results_dir), contextlib.redirect_stdout(printed):
            predictions = [official.getPrediction(gt, args) for gt in gt_files]
            averages = official.evaluateImgLists(predictions, gt_files, args)["averages"]
            args.quiet = False
            official.printResults(averages, args)
    except SystemExit:
        last = (printed.getvalue().strip().splitlines() or ["(no message)"])[-1]
        raise DatasetError(f"the official Cityscapes evaluation stopped: {last}") from None
    finally:
        official.np = numpy
    return {**averages, "table": printed.getvalue().strip()}
