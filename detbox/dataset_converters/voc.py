"""Pascal VOC XML folders to COCO JSON."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from detbox.data.records import records_to_coco
from detbox.data.voc import read_voc_folder, voc_class_names, voc_records
from detbox.dataset_converters.common import write_coco_json

__all__ = ["voc_to_coco"]


def voc_to_coco(
    data_root: str | os.PathLike,
    out: str | os.PathLike | None = None,
    *,
    ann_subdir: str = "Annotations",
    img_subdir: str = "JPEGImages",
    split_file: str | os.PathLike | None = None,
    class_names: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Convert a VOC split to a COCO dict (written to ``out`` when given).

    Boxes follow ``VOCDataset``: ``[xmin - 1, ymin - 1, xmax - xmin + 1, ymax - ymin + 1]``.
    Difficult objects become ``iscrowd=1`` annotations, which COCO loaders (``CocoDataset``)
    and COCO evaluation treat as ignored regions. Category ids are ``1..C`` in class order
    (``class_names``, or the names found, sorted); images are ``file_name`` relative to
    ``img_subdir``, ids ``1..N`` in split order — the same ids ``VOCDataset`` gives them.

    Args:
        data_root: the VOC folder.
        out: the COCO JSON file to write.
        ann_subdir, img_subdir, split_file, class_names: as for ``VOCDataset``.
    """
    entries, _ = read_voc_folder(data_root, ann_subdir, img_subdir, split_file)
    all_names = voc_class_names(entries, class_names)
    keep = len(class_names) if class_names is not None else len(all_names)
    data = records_to_coco(voc_records(entries, all_names), all_names,
                           keep_cat_ids=range(1, keep + 1))
    if out is not None:
        write_coco_json(data, out)
    return data
