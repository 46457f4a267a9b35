"""The official WIDER FACE box lists to VOC XML files (``WIDERFaceDataset``'s layout).

``wider_face_split/wider_face_<split>_bbx_gt.txt`` lists, per image, its path
(``0--Parade/0_Parade_marchingband_1_849.jpg``), the number of faces, then one line per face:
``x y w h blur expression illumination invalid occlusion pose`` (pixels, 0-based). An image
without faces still has one line of zeros. Each image becomes ``<ann_dir>/<stem>.xml`` with its
event folder in ``<folder>``, a face per ``<object>`` (``xmin = x + 1``, ``xmax = x + w``: VOC's
1-based inclusive pixels, which ``VOCDataset`` reads back as ``[x, y, x + w, y + h]``), the six
attributes as tags of the object, and ``<difficult>1</difficult>`` for ``invalid`` faces. Faces
of zero width or height (a few in the training list) are left out. The split file lists the
stems, in the order of the text file.

VOC XML rather than COCO JSON: it is the layout MMDetection's WIDER FACE recipes and the
published VOC conversions use, so existing folders load as they are, and a folder converted
here loads in tools that expect it.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path

from detbox.data.records import read_image_size
from detbox.data.skipping import UnreadableFiles
from detbox.errors import DatasetError
from detbox.utils.io import atomic_write_text

__all__ = ["WIDER_ATTRIBUTES", "read_wider_face_txt", "wider_face_to_voc"]

WIDER_ATTRIBUTES = ("blur", "expression", "illumination", "invalid", "occlusion", "pose")


def read_wider_face_txt(path: str | os.PathLike) -> list[tuple[str, list[list[int]]]]:
    """``[(image path, [[x, y, w, h, blur, ..., pose], ...]), ...]`` of a ``*_bbx_gt.txt``.

    Raises:
        DatasetError: naming the file and line: a count that is not a number, a face line
            without 10 numbers, or a list that ends early.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: WIDER FACE box list not found")
    lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    images, i = [], 0
    while i < len(lines):
        if not lines[i]:
            i += 1
            continue
        name, count_text = lines[i], lines[i + 1] if i + 1 < len(lines) else ""
        if not count_text.isdigit():
            raise DatasetError(f"{path}:{i + 2}: expected the number of faces of {name}, got "
                               f"'{count_text}'")
        count, i = int(count_text), i + 2
        faces = [_face(path, i + k, lines) for k in range(count)]
        i += count
        if count == 0 and i < len(lines) and len(lines[i].split()) == 10:
            i += 1  # the line of zeros of an image without faces
        images.append((name, faces))
    return images


def _face(path: Path, index: int, lines: list[str]) -> list[int]:
    if index >= len(lines):
        raise DatasetError(f"{path}: ends inside the face list of an image (line {index + 1})")
    values = lines[index].split()
    if len(values) != 10 or not all(v.lstrip("-").isdigit() for v in values):
        raise DatasetError(f"{path}:{index + 1}: expected 'x y w h' and 6 attributes (10 "
                           f"integers), got '{lines[index]}'")
    return [int(v) for v in values]


def wider_face_to_voc(
    gt_txt: str | os.PathLike,
    img_dir: str | os.PathLike,
    ann_dir: str | os.PathLike,
    split_file: str | os.PathLike,
    *,
    skipped: UnreadableFiles | None = None,
) -> dict[str, int]:
    """Write one VOC XML per image of ``gt_txt`` into ``ann_dir`` and the ids to ``split_file``.

    Args:
        gt_txt: ``wider_face_<split>_bbx_gt.txt``.
        img_dir: the folder of the ``<event>/`` image folders (the size is read from each image).
        ann_dir: where the XML files go (created).
        split_file: the id list to write (``train.txt``).
        skipped: collects images that cannot be read; each is logged and left out.

    Returns:
        ``{"images", "faces", "ignored", "skipped"}`` counts (ignored: the invalid faces).
    """
    skipped = UnreadableFiles("images") if skipped is None else skipped
    ann_dir = Path(ann_dir)
    ann_dir.mkdir(parents=True, exist_ok=True)
    ids, faces, ignored = [], 0, 0
    for name, boxes in read_wider_face_txt(gt_txt):
        try:
            width, height = read_image_size(Path(img_dir) / name)
        except DatasetError as exc:
            skipped.add(str(Path(img_dir) / name), "unreadable image", str(exc))
            continue
        kept = [b for b in boxes if b[2] > 0 and b[3] > 0]
        atomic_write_text(ann_dir / f"{Path(name).stem}.xml",
                          _xml(name, width, height, kept))
        ids.append(Path(name).stem)
        faces += len(kept)
        ignored += sum(b[7] != 0 for b in kept)
    atomic_write_text(split_file, "".join(f"{i}\n" for i in ids))
    return {"images": len(ids), "faces": faces, "ignored": ignored, "skipped": len(skipped)}


def _xml(name: str, width: int, height: int, boxes: list[list[int]]) -> str:
    root = ET.Element("annotation")
    ET.SubElement(root, "folder").text = str(Path(name).parent)
    ET.SubElement(root, "filename").text = Path(name).name
    size = ET.SubElement(root, "size")
    for tag, value in (("width", width), ("height", height), ("depth", 3)):
        ET.SubElement(size, tag).text = str(value)
    for x, y, w, h, *attributes in boxes:
        obj = ET.SubElement(root, "object")
        ET.SubElement(obj, "name").text = "face"
        ET.SubElement(obj, "difficult").text = str(int(attributes[3] != 0))
        for tag, value in zip(WIDER_ATTRIBUTES, attributes, strict=True):
            ET.SubElement(obj, tag).text = str(value)
        box = ET.SubElement(obj, "bndbox")
        for tag, value in (("xmin", x + 1), ("ymin", y + 1), ("xmax", x + w), ("ymax", y + h)):
            ET.SubElement(box, tag).text = str(value)
    ET.indent(root)
    return ET.tostring(root, encoding="unicode") + "\n"
