"""Pascal VOC datasets: one XML file per image (VOC devkit, labelImg and CVAT exports).

Coordinates: VOC numbers pixels from 1 and its boxes are inclusive (``xmin = 1`` is the first
pixel column, ``xmax = W`` the last). detbox boxes are continuous with the image spanning
``[0, W]``, so a box is read as ``(xmin - 1, ymin - 1, xmax, ymax)``: the same pixels, the
convention of Detectron2 and of the VOC-to-COCO conversions in common use.
"""

from __future__ import annotations

import difflib
import os
import warnings
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from detbox.data.base import DetectionDataset, PipelineConfig
from detbox.data.records import RecordAnnotations, read_image_size
from detbox.errors import DatasetError
from detbox.registry import DATASETS

__all__ = ["VOCDataset", "parse_voc_xml", "read_voc_folder", "voc_class_names", "voc_records"]

_IMAGE_SUFFIXES = (".jpg", ".png", ".jpeg", ".bmp")
_TYPO_CUTOFF = 0.75  # difflib ratio above which an unused listed class looks like a misspelling


@DATASETS.register
class VOCDataset(DetectionDataset):
    """A Pascal VOC folder: ``Annotations/<id>.xml``, ``JPEGImages/<id>.jpg``, split files.

    Objects marked ``<difficult>1</difficult>`` become ignored boxes (neither object nor
    background in training; neither true nor false positive in VOC evaluation). Image ids are
    ``1..N`` in split-file order; ``coco`` is the data as a pycocotools index (category id =
    position in the class list + 1) so COCO metrics work too.

    Args:
        data_root: the dataset folder (e.g. ``VOCdevkit/VOC2007``).
        ann_subdir: XML folder, relative to ``data_root``.
        img_subdir: image folder, relative to ``data_root``. The XML's ``<filename>`` is used
            when that file exists there, else ``<id>.jpg`` (or .png, .jpeg, .bmp).
        split_file: file of image ids, one per line (relative to ``data_root``, e.g.
            ``ImageSets/Main/val.txt``); None: every XML in ``ann_subdir``, sorted.
        pipeline: transform configs; default: load, normalize and pack at the original size.
        class_names: the classes to load, label ``i`` being ``class_names[i]``; objects of other
            classes are left out (a warning counts them). None: every name in the XMLs,
            sorted. Names that differ from a listed class only in case, spaces, ``-`` or ``_``
            are errors, as are listed classes no XML uses while a similar name is unlisted.
        filter_empty: drop images without a (non-difficult) object of a kept class; training
            only.
        test_mode: evaluation use: no image is filtered.
        label_map_out: write ``label_map.json`` (label, category id, name) here: a folder or
            a ``.json`` path. ``write_label_map(path)`` does the same later.
        max_skipped_images: as for ``CocoDataset``: unreadable training images are skipped
            with a warning, up to this many.
    """

    def __init__(
        self,
        data_root: str | os.PathLike,
        ann_subdir: str = "Annotations",
        img_subdir: str = "JPEGImages",
        split_file: str | os.PathLike | None = None,
        pipeline: PipelineConfig | None = None,
        *,
        class_names: Sequence[str] | None = None,
        filter_empty: bool = False,
        test_mode: bool = False,
        label_map_out: str | os.PathLike | None = None,
        max_skipped_images: int = 10,
    ) -> None:
        self.data_root = str(data_root)
        entries, source = read_voc_folder(data_root, ann_subdir, img_subdir, split_file)
        all_names = voc_class_names(entries, class_names)
        annotations = RecordAnnotations(records=voc_records(entries, all_names),
                                        all_class_names=all_names, class_names=class_names,
                                        source=source)
        super().__init__(
            annotations=annotations, ann_file=source, img_dir=os.path.join(data_root, img_subdir),
            pipeline=pipeline, with_mask=annotations.has_masks, filter_empty=filter_empty,
            test_mode=test_mode, max_skipped_images=max_skipped_images,
            label_map_out=label_map_out,
        )


def read_voc_folder(
    data_root: str | os.PathLike,
    ann_subdir: str = "Annotations",
    img_subdir: str = "JPEGImages",
    split_file: str | os.PathLike | None = None,
) -> tuple[list[dict[str, Any]], str]:
    """Parse the XML of every image of a split.

    Returns:
        ``(entries, source)``: per image ``parse_voc_xml``'s dict plus ``id``, ``xml`` and
        ``filename`` (the image relative to ``img_subdir``), with the size read from the image
        when the XML has none; ``source`` names the split file or XML folder for messages.
    """
    root = Path(data_root)
    ann_dir, img_dir = root / ann_subdir, root / img_subdir
    if not ann_dir.is_dir():
        raise DatasetError(f"{ann_dir}: VOC annotation folder not found; check data_root "
                           "and ann_subdir")
    if split_file is None:
        ids, source = sorted(p.stem for p in ann_dir.glob("*.xml")), str(ann_dir)
    else:
        split_path = root / split_file
        ids, source = read_split_file(split_path), str(split_path)
    entries = []
    for image_id in ids:
        xml_path = ann_dir / f"{image_id}.xml"
        if not xml_path.is_file():
            raise DatasetError(f"{xml_path}: annotation file not found for id '{image_id}' "
                               f"listed in {source}")
        entry = parse_voc_xml(xml_path)
        entry["id"], entry["xml"] = image_id, str(xml_path)
        entry["filename"] = _image_name(img_dir, image_id, entry["filename"], xml_path)
        if entry["width"] is None or entry["height"] is None:
            entry["width"], entry["height"] = read_image_size(img_dir / entry["filename"])
        entries.append(entry)
    return entries, source


def read_split_file(path: str | os.PathLike) -> list[str]:
    """Image ids of a VOC split file (the first word of each non-empty line)."""
    if not os.path.isfile(path):
        raise DatasetError(f"{path}: split file not found; check data_root and split_file "
                           "(or set split_file=None to use every XML)")
    with open(path, encoding="utf-8") as f:
        return [line.split()[0] for line in f if line.strip()]


def _image_name(img_dir: Path, image_id: str, xml_name: str | None, xml_path: Path) -> str:
    candidates = ([xml_name] if xml_name else []) + [image_id + s for s in _IMAGE_SUFFIXES]
    for name in candidates:
        if (img_dir / name).is_file():
            return name
    raise DatasetError(f"{xml_path}: its image is not in {img_dir} (tried "
                       f"{', '.join(candidates[:2])}); check img_subdir or the <filename>")


def parse_voc_xml(path: str | os.PathLike) -> dict[str, Any]:
    """Read one VOC XML file.

    Returns:
        ``{"filename": str | None, "folder": str | None, "width": int | None, "height":
        int | None, "objects": [{"name": str, "bbox": [x1, y1, x2, y2] (0-based,
        continuous), "difficult": bool}]}``.

    Raises:
        DatasetError: naming the file: malformed XML, an object without name or box, a
            coordinate that is not a number, or a box with ``xmax < xmin``.
    """
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as exc:
        raise DatasetError(f"{path}: malformed XML ({exc}); fix or remove the file") from None
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read annotation file ({exc})") from None
    if root.tag != "annotation":
        raise DatasetError(f"{path}: root element is <{root.tag}>, not <annotation>; "
                           "is this a Pascal VOC file?")
    width = _size_field(root, "width", path)
    height = _size_field(root, "height", path)
    objects = [_parse_object(obj, i, path) for i, obj in enumerate(root.findall("object"))]
    return {"filename": _text(root, "filename"), "folder": _text(root, "folder"),
            "width": width, "height": height, "objects": objects}


def _text(node: ET.Element, tag: str) -> str | None:
    child = node.find(tag)
    if child is None or child.text is None or not child.text.strip():
        return None
    return child.text.strip()


def _size_field(root: ET.Element, tag: str, path: Any) -> int | None:
    """``<size><tag>``, or None when missing or 0 (the size then comes from the image)."""
    size = root.find("size")
    text = _text(size, tag) if size is not None else None
    if text is None:
        return None
    try:
        value = int(float(text))
    except ValueError:
        raise DatasetError(f"{path}: <size><{tag}> is '{text}', not a number") from None
    return value if value > 0 else None


def _parse_object(obj: ET.Element, index: int, path: Any) -> dict[str, Any]:
    name = _text(obj, "name")
    if name is None:
        raise DatasetError(f"{path}: object #{index} has no <name>; add the class name")
    where = f"{path}: object #{index} ('{name}')"
    box = obj.find("bndbox")
    if box is None:
        raise DatasetError(f"{where} has no <bndbox>; add one or remove the object")
    coords = []
    for tag in ("xmin", "ymin", "xmax", "ymax"):
        text = _text(box, tag)
        if text is None:
            raise DatasetError(f"{where}: <bndbox> has no <{tag}>")
        try:
            coords.append(float(text))
        except ValueError:
            raise DatasetError(f"{where}: <{tag}> is '{text}', not a number") from None
    xmin, ymin, xmax, ymax = coords
    if xmax < xmin or ymax < ymin:
        raise DatasetError(f"{where}: box has xmax < xmin or ymax < ymin ({coords}); fix it")
    difficult = _text(obj, "difficult")
    return {"name": name, "bbox": [xmin - 1.0, ymin - 1.0, xmax, ymax],
            "difficult": difficult not in (None, "0", "false", "False")}


def _normalized(name: str) -> str:
    return "".join(c for c in name.lower() if c not in " _-")


def voc_class_names(
    entries: Sequence[dict[str, Any]], class_names: Sequence[str] | None
) -> list[str]:
    """Every class of the dataset: ``class_names`` first, then the other names found, sorted.

    Raises:
        DatasetError: naming an XML file, for a name that differs from another only in case,
            spaces, ``-`` or ``_``, or a listed class that no XML uses while a similar name is
            unlisted (a typo on one side or the other).
    """
    counts = Counter(obj["name"] for e in entries for obj in e["objects"])
    first_file = {}
    for entry in entries:
        for obj in entry["objects"]:
            first_file.setdefault(obj["name"], entry["xml"])
    listed = [str(n) for n in class_names] if class_names is not None else []
    others = sorted(n for n in counts if n not in listed)
    by_key: dict[str, list[str]] = {}
    for name in [*listed, *others]:
        by_key.setdefault(_normalized(name), []).append(name)
    for spellings in by_key.values():
        if len(spellings) > 1 and not all(n in listed for n in spellings):
            _raise_spelling(spellings, listed, counts, first_file)
    for name in listed:
        match = difflib.get_close_matches(name, others, n=1, cutoff=_TYPO_CUTOFF)
        if counts[name] == 0 and match:
            raise DatasetError(
                f"{first_file[match[0]]}: has class '{match[0]}', not in class_names, while "
                f"class_names has '{name}', which no XML uses; fix class_names or the XMLs"
            )
    if class_names is not None and others:
        dropped = ", ".join(f"{n} ({counts[n]})" for n in others)
        warnings.warn(f"VOC objects of classes not in class_names are left out: {dropped}",
                      stacklevel=3)
    return [*listed, *others] if class_names is not None else others


def _raise_spelling(
    spellings: list[str], listed: list[str], counts: Counter, first_file: dict[str, str]
) -> None:
    """Report the rarer (or unlisted) spelling of one name, with the file it comes from."""
    keep = next((n for n in spellings if n in listed), max(spellings, key=lambda n: counts[n]))
    odd = next(n for n in spellings if n != keep and n in first_file)
    raise DatasetError(
        f"{first_file[odd]}: unknown class name '{odd}' ({counts[odd]} object(s)); did you "
        f"mean '{keep}'? Fix the XML files or list both names in class_names"
    )


def voc_records(
    entries: Sequence[dict[str, Any]], class_names: Sequence[str]
) -> list[dict[str, Any]]:
    """Middle-format records of parsed VOC entries; difficult objects become ignored boxes."""
    label_of = {name: i for i, name in enumerate(class_names)}
    records = []
    for entry in entries:
        boxes: dict[bool, list] = {False: [], True: []}
        labels: dict[bool, list] = {False: [], True: []}
        for obj in entry["objects"]:
            boxes[obj["difficult"]].append(obj["bbox"])
            labels[obj["difficult"]].append(label_of[obj["name"]])
        records.append({
            "filename": entry["filename"], "width": entry["width"], "height": entry["height"],
            "ann": {
                "bboxes": np.asarray(boxes[False], dtype=np.float32).reshape(-1, 4),
                "labels": np.asarray(labels[False], dtype=np.int64),
                "bboxes_ignore": np.asarray(boxes[True], dtype=np.float32).reshape(-1, 4),
                "labels_ignore": np.asarray(labels[True], dtype=np.int64),
                "masks": None,
            },
        })
    return records
