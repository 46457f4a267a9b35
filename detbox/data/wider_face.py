"""WIDER FACE in VOC XML form: one class, ``face`` (MMDetection's ``WIDERFaceDataset`` layout).

::

    <data_root>/train.txt                     image ids, one per line
    <data_root>/WIDER_train/Annotations/<id>.xml
    <data_root>/WIDER_train/<event>/<id>.jpg  <event> is the XML's <folder>, e.g. 0--Parade

The official image archive unpacks to ``WIDER_train/images/<event>/``: give
``img_subdir="WIDER_train/images"`` then. ``detbox convert widerface`` writes the XML files and
the id list from the official ``wider_face_split/wider_face_<split>_bbx_gt.txt``. Faces marked
``<difficult>1</difficult>`` (the converter marks the ``invalid`` ones) are ignored boxes.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from detbox.data.base import DetectionDataset, PipelineConfig
from detbox.data.records import RecordAnnotations, read_image_size
from detbox.data.voc import parse_voc_xml, read_split_file, voc_records
from detbox.errors import DatasetError
from detbox.registry import DATASETS

__all__ = ["WIDER_FACE_CLASSES", "WIDERFaceDataset", "read_wider_face_folder"]

WIDER_FACE_CLASSES = ("face",)


@DATASETS.register
class WIDERFaceDataset(DetectionDataset):
    """WIDER FACE images and their VOC XML annotations; label 0 is ``face``.

    Args:
        data_root: the dataset folder (e.g. ``data/WIDERFace``).
        split_file: file of image ids relative to ``data_root`` (``train.txt``, ``val.txt``).
        img_subdir: folder of the ``<event>/`` image folders, relative to ``data_root``.
        ann_subdir: folder of the XML files, relative to ``data_root``.
        pipeline: transform configs; default: load, normalize and pack at the original size.
        filter_empty: drop images without a (non-difficult) face; training only.
        test_mode: evaluation use: no image is filtered.
        eval_gt_dir: folder of the official evaluation's ground truth
            (``wider_face_val.mat``, ``wider_easy_val.mat``, ``wider_medium_val.mat``,
            ``wider_hard_val.mat``), for ``evaluation.metric=['wider_face']``.
        max_skipped_images: as for ``CocoDataset``.

    Image ids are ``1..N`` in split-file order; ``coco`` is the data as a pycocotools index
    (category id 1), so the COCO and VOC metrics work too.
    """

    def __init__(
        self,
        data_root: str | os.PathLike,
        split_file: str | os.PathLike = "train.txt",
        img_subdir: str = "WIDER_train",
        ann_subdir: str = "WIDER_train/Annotations",
        pipeline: PipelineConfig | None = None,
        *,
        filter_empty: bool = False,
        test_mode: bool = False,
        eval_gt_dir: str | os.PathLike | None = None,
        max_skipped_images: int = 10,
    ) -> None:
        self.data_root = str(data_root)
        self.eval_gt_dir = None if eval_gt_dir is None else str(eval_gt_dir)
        entries, source = read_wider_face_folder(data_root, split_file, img_subdir, ann_subdir)
        annotations = RecordAnnotations(records=voc_records(entries, WIDER_FACE_CLASSES),
                                        all_class_names=WIDER_FACE_CLASSES, source=source)
        super().__init__(
            annotations=annotations, ann_file=source, img_dir=os.path.join(data_root, img_subdir),
            pipeline=pipeline, filter_empty=filter_empty, test_mode=test_mode,
            max_skipped_images=max_skipped_images,
        )


def read_wider_face_folder(
    data_root: str | os.PathLike,
    split_file: str | os.PathLike,
    img_subdir: str,
    ann_subdir: str,
) -> tuple[list[dict[str, Any]], str]:
    """Parse the XML of every image of a split.

    Returns:
        ``(entries, source)``: per image ``parse_voc_xml``'s dict with ``filename`` set to
        ``<folder>/<file>`` (relative to ``img_subdir``) and the size read from the image when
        the XML has none; ``source`` is the split file, for messages.

    Raises:
        DatasetError: naming the file: a missing XML or image, or an object that is not a face.
    """
    root = Path(data_root)
    split_path = root / split_file
    img_dir, ann_dir = root / img_subdir, root / ann_subdir
    entries = []
    for image_id in read_split_file(split_path):
        xml_path = ann_dir / f"{image_id}.xml"
        if not xml_path.is_file():
            raise DatasetError(f"{xml_path}: annotation file not found for id '{image_id}' "
                               f"listed in {split_path}; check ann_subdir")
        entry = parse_voc_xml(xml_path)
        others = sorted({o["name"] for o in entry["objects"]} - set(WIDER_FACE_CLASSES))
        if others:
            raise DatasetError(f"{xml_path}: objects of class {others}; WIDER FACE has only "
                               "'face' (use VOCDataset for other classes)")
        name = entry["filename"] or f"{image_id}.jpg"
        entry["filename"] = f"{entry['folder']}/{name}" if entry["folder"] else name
        if not (img_dir / entry["filename"]).is_file():
            raise DatasetError(f"{xml_path}: its image {img_dir / entry['filename']} does not "
                               "exist; check img_subdir (the official archive has images/)")
        if entry["width"] is None or entry["height"] is None:
            entry["width"], entry["height"] = read_image_size(img_dir / entry["filename"])
        entry["xml"] = str(xml_path)
        entries.append(entry)
    return entries, str(split_path)
