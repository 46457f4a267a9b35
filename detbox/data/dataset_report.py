"""Find every problem of a COCO dataset in one pass: the engine of ``detbox check-dataset``.

``CocoDataset`` stops at the first defect it meets (``coco_validation``), which is right for a
training run but slow for repairing a dataset one error at a time. ``check_coco_dataset`` reads
the raw JSON and every image file once and collects all problems, each with where it is (file
name, image or annotation id) and what to do about it. Errors break training or evaluation;
warnings are worth a look but harmless.
"""

from __future__ import annotations

import difflib
import math
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from PIL import Image, UnidentifiedImageError

from detbox.data.coco_validation import read_coco_json
from detbox.errors import DatasetError

__all__ = ["DatasetReport", "Problem", "check_coco_dataset"]

ERROR, WARNING = "error", "warning"
_IMAGE_KEYS = ("id", "file_name", "width", "height")
_ANN_KEYS = ("id", "image_id", "category_id", "bbox")
_CATEGORY_KEYS = ("id", "name")
_ROTATING_ORIENTATIONS = (5, 6, 7, 8)  # EXIF orientations that swap width and height

# The usual fix of each kind of problem (a problem may carry a more specific one).
FIXES = {
    "annotation_file": "fix or regenerate the annotation file",
    "missing_key": "add the key or remove the entry",
    "duplicate_image_id": "give every image a unique id (and update its annotations)",
    "duplicate_file_name": "list each image file once; merge the entries' annotations",
    "duplicate_category_id": "give every category a unique id",
    "duplicate_category_name": "rename one of them; class_names selects categories by name",
    "duplicate_annotation_id": "give every annotation a unique id",
    "bad_image_size": "set the image's true width and height (positive integers)",
    "unknown_image": "fix the annotation's image_id or remove the annotation",
    "unknown_category": "fix the category_id or add the category to 'categories'",
    "bbox_malformed": "write bbox as [x, y, width, height] numbers, or remove the annotation",
    "bbox_not_finite": "replace NaN/infinite coordinates, or remove the annotation",
    "bbox_empty": "give the box a positive width and height, or remove the annotation",
    "bbox_outside_image": "fix the box (absolute pixels, [x, y, w, h]) or remove the annotation",
    "bbox_partly_outside": "clip the box to the image (detbox clips it when loading)",
    "polygon_too_few_points": "a polygon needs at least 3 (x, y) points: fix or remove it",
    "polygon_malformed": "write polygons as flat [x1, y1, x2, y2, ...] lists of numbers",
    "segmentation_empty": "add the mask or drop the key; mask training fails on it",
    "rle_malformed": "an RLE needs 'size' [height, width] and 'counts' covering h*w pixels",
    "rle_size_mismatch": "encode the mask at the image's size [height, width]",
    "area_missing": "add 'area' (mask or box area); COCO evaluation reads it",
    "image_missing": "check --img-dir / img_dir and the file_name, or remove the image",
    "image_unreadable": "replace the file with a valid image, or remove it from the JSON",
    "image_truncated": "re-copy or re-export the file (it is cut short), or remove it",
    "image_size_mismatch": "set width/height in the JSON to the image's real size",
    "class_name_missing": "fix class_names in the config (they must match category names)",
    "images_without_annotations": "fine as negatives; filter_empty=True drops them in training",
    "category_unused": "remove the category or add its annotations",
    "images_not_checked": "pass --img-dir (or a config with img_dir) to check image files",
}


@dataclass
class Problem:
    """One defect: ``where`` names the file, image or annotation; ``fix`` says what to do."""

    severity: str
    code: str
    where: str
    message: str
    fix: str


@dataclass
class DatasetReport:
    """Everything ``check_coco_dataset`` found, plus counts and a class frequency table.

    ``class_table`` rows: ``{id, name, instances, crowd, images}`` (non-crowd objects, crowd
    regions and images showing the class), in category id order.
    """

    ann_file: str
    img_dir: str | None = None
    problems: list[Problem] = field(default_factory=list)
    num_images: int = 0
    num_annotations: int = 0
    images_read: int = 0
    empty_images: list[str] = field(default_factory=list)
    class_table: list[dict[str, Any]] = field(default_factory=list)

    def add(self, severity: str, code: str, where: str, message: str,
            fix: str | None = None) -> None:
        self.problems.append(Problem(severity, code, where, message, fix or FIXES[code]))

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == ERROR]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == WARNING]

    def codes(self) -> Counter:
        """How many problems of each code."""
        return Counter(p.code for p in self.problems)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "num_errors": len(self.errors),
                "num_warnings": len(self.warnings)}


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _entries(data: dict[str, Any], key: str, required: Sequence[str],
             report: DatasetReport) -> list[dict[str, Any]]:
    """The well-formed entries of ``data[key]``; the others are reported and left out."""
    if key not in data:
        if key == "annotations":
            report.add(WARNING, "missing_key", report.ann_file, "no 'annotations': an image "
                       "list for inference (test_mode), not usable for training or evaluation")
        else:
            report.add(ERROR, "missing_key", report.ann_file, f"no top-level '{key}' list")
        return []
    if not isinstance(data[key], list):
        report.add(ERROR, "missing_key", report.ann_file, f"'{key}' is not a list",
                   f"make '{key}' a JSON list")
        return []
    kept = []
    for index, entry in enumerate(data[key]):
        missing = [k for k in required if not isinstance(entry, dict) or k not in entry]
        unusable = [k for k in required if k not in missing and k != "bbox"
                    and isinstance(entry[k], (list, dict))]
        if missing or unusable:
            problem = f"entry lacks {', '.join(repr(k) for k in missing)}" if missing else \
                f"{', '.join(repr(k) for k in unusable)} must be a number or string"
            report.add(ERROR, "missing_key", f"{key}[{index}]", problem)
        else:
            kept.append(entry)
    return kept


def _groups(entries: list[dict], key: str) -> dict[Any, list[dict]]:
    """Entries grouped by ``entry[key]``, in first-seen order."""
    groups: dict[Any, list[dict]] = {}
    for entry in entries:
        groups.setdefault(entry[key], []).append(entry)
    return groups


def _check_images(images: list[dict], report: DatasetReport) -> dict[Any, dict]:
    """Duplicate ids and file names, bad sizes; returns id -> first entry with that id."""
    by_id = _groups(images, "id")
    for image_id, group in by_id.items():
        if len(group) > 1:
            names = ", ".join(str(im["file_name"]) for im in group)
            report.add(ERROR, "duplicate_image_id", f"image id {image_id}",
                       f"{len(group)} images share this id: {names}")
    for name, group in _groups(images, "file_name").items():
        if len(group) > 1:
            ids = ", ".join(str(im["id"]) for im in group)
            report.add(ERROR, "duplicate_file_name", str(name),
                       f"listed {len(group)} times (image ids {ids})")
    for image in images:
        size = (image["width"], image["height"])
        if not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in size):
            report.add(ERROR, "bad_image_size", _image_where(image),
                       f"width/height {list(size)} are not positive integers")
    return {image_id: group[0] for image_id, group in by_id.items()}


def _image_where(image: dict[str, Any]) -> str:
    return f"{image['file_name']} (image id {image['id']})"


def _check_categories(categories: list[dict], report: DatasetReport) -> None:
    for cat_id, group in _groups(categories, "id").items():
        if len(group) > 1:
            report.add(ERROR, "duplicate_category_id", f"category id {cat_id}",
                       f"{len(group)} categories have this id")
    for name, group in _groups(categories, "name").items():
        if len(group) > 1:
            report.add(WARNING, "duplicate_category_name", f"category '{name}'",
                       f"{len(group)} categories have this name")


def _check_annotations(annotations: list[dict], images: dict[Any, dict], cat_ids: set,
                       report: DatasetReport) -> None:
    for ann_id, group in _groups(annotations, "id").items():
        if len(group) > 1:
            report.add(ERROR, "duplicate_annotation_id", f"annotation {ann_id}",
                       f"{len(group)} annotations have this id")
    for ann in annotations:
        image = images.get(ann["image_id"])
        where = f"annotation {ann['id']}" + (f" ({image['file_name']})" if image else "")
        if image is None:
            report.add(ERROR, "unknown_image", where,
                       f"image_id {ann['image_id']} is not in 'images'")
        if ann["category_id"] not in cat_ids:
            known = ", ".join(str(c) for c in sorted(cat_ids, key=str))
            report.add(ERROR, "unknown_category", where,
                       f"category_id {ann['category_id']} is not in 'categories' ({known})")
        if "area" not in ann:
            report.add(WARNING, "area_missing", where, "no 'area'")
        _check_box(ann["bbox"], image, where, report)
        if ann.get("segmentation") is not None:
            _check_segmentation(ann["segmentation"], image, where, report)


def _check_box(bbox: Any, image: dict | None, where: str, report: DatasetReport) -> None:
    if not isinstance(bbox, (list, tuple)) or len(bbox) != 4 or not all(map(_is_number, bbox)):
        report.add(ERROR, "bbox_malformed", where, f"bbox {bbox!r} is not 4 numbers")
        return
    if not all(math.isfinite(v) for v in bbox):
        report.add(ERROR, "bbox_not_finite", where, f"bbox {list(bbox)} has NaN or infinity")
        return
    x, y, w, h = bbox
    if w <= 0 or h <= 0:
        report.add(ERROR, "bbox_empty", where,
                   f"bbox {list(bbox)} has zero or negative width/height")
        return
    if image is None or not all(_is_number(image[k]) for k in ("width", "height")):
        return
    width, height = image["width"], image["height"]
    if x >= width or y >= height or x + w <= 0 or y + h <= 0:
        report.add(ERROR, "bbox_outside_image", where,
                   f"bbox {list(bbox)} lies entirely outside the {width}x{height} image")
    elif x < -1 or y < -1 or x + w > width + 1 or y + h > height + 1:
        report.add(WARNING, "bbox_partly_outside", where,
                   f"bbox {list(bbox)} extends beyond the {width}x{height} image")


def _check_segmentation(segm: Any, image: dict | None, where: str,
                        report: DatasetReport) -> None:
    if isinstance(segm, list):
        if not segm:
            report.add(WARNING, "segmentation_empty", where, "segmentation is an empty list")
        for polygon in segm:
            if not isinstance(polygon, list) or not all(map(_is_number, polygon)) or not all(
                    math.isfinite(v) for v in polygon) or len(polygon) % 2:
                report.add(ERROR, "polygon_malformed", where,
                           "a polygon is not an even-length list of finite numbers")
            elif len(polygon) < 6:
                report.add(ERROR, "polygon_too_few_points", where,
                           f"a polygon has {len(polygon) // 2} point(s)")
        return
    if not isinstance(segm, dict) or "counts" not in segm or "size" not in segm:
        report.add(ERROR, "rle_malformed", where, "segmentation is neither polygons nor an RLE")
        return
    size = segm["size"]
    if not isinstance(size, list) or len(size) != 2 or not all(map(_is_number, size)):
        report.add(ERROR, "rle_malformed", where, f"RLE size {size!r} is not [height, width]")
        return
    if image is not None and size != [image["height"], image["width"]]:
        report.add(ERROR, "rle_size_mismatch", where, f"RLE size {list(size)} differs from the "
                   f"image size [{image['height']}, {image['width']}] (height, width)")
    counts = segm["counts"]
    if isinstance(counts, list) and sum(counts) != size[0] * size[1]:
        report.add(ERROR, "rle_malformed", where,
                   f"RLE counts cover {sum(counts)} pixels, not {size[0]} x {size[1]}")


def _inspect_image(path: str) -> tuple[tuple[int, int] | None, bool, str | None]:
    """``((width, height) as displayed, rotated by EXIF, error)`` after decoding every pixel."""
    try:
        with Image.open(path) as pil:
            width, height = pil.size
            rotated = pil.getexif().get(0x0112) in _ROTATING_ORIENTATIONS
            pil.load()
    except FileNotFoundError:
        return None, False, "missing"
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError) as exc:
        return None, False, str(exc) or type(exc).__name__
    return ((height, width) if rotated else (width, height)), rotated, None


def _check_image_file(image: dict, img_dir: str, report: DatasetReport,
                      seen: dict[str, tuple]) -> None:
    """Open (once per file name, ``seen`` caches) and compare with the JSON's size."""
    where = _image_where(image)
    name = str(image["file_name"])
    if name not in seen:
        seen[name] = _inspect_image(os.path.join(img_dir, name))
        report.images_read += seen[name][2] is None
    size, rotated, error = seen[name]
    if error == "missing":
        report.add(ERROR, "image_missing", where, f"no such file in {img_dir}")
        return
    if error is not None:
        code = "image_truncated" if "truncat" in error.lower() else "image_unreadable"
        report.add(ERROR, code, where, f"cannot decode: {error}")
        return
    expected = (image["width"], image["height"])
    if size != expected:
        fix = FIXES["image_size_mismatch"]
        if rotated and size[::-1] == expected:
            fix = ("its EXIF orientation rotates it by 90 degrees, and detbox (like image "
                   "viewers) loads it rotated: set width/height to the rotated size and annotate "
                   "the rotated image, or save the pixels rotated without the EXIF tag")
        report.add(ERROR, "image_size_mismatch", where,
                   f"image is {size[0]}x{size[1]}, the JSON says {expected[0]}x{expected[1]}",
                   fix)


def _check_class_names(class_names: Sequence[str], categories: list[dict],
                       report: DatasetReport) -> None:
    names = [str(c["name"]) for c in categories]
    for name in class_names:
        if name not in names:
            close = difflib.get_close_matches(str(name), names, n=3, cutoff=0.5)
            hint = f"; closest: {', '.join(repr(c) for c in close)}" if close else ""
            report.add(ERROR, "class_name_missing", f"class_names '{name}'",
                       f"no category of this name (categories: {', '.join(names)}){hint}")


def _summarize(images: list[dict], annotations: list[dict], categories: list[dict],
               report: DatasetReport) -> None:
    report.num_images, report.num_annotations = len(images), len(annotations)
    annotated = {a["image_id"] for a in annotations}
    report.empty_images = [str(im["file_name"]) for im in images if im["id"] not in annotated]
    if report.empty_images and annotations:
        shown = ", ".join(report.empty_images[:5]) + (", ..." if len(report.empty_images) > 5
                                                       else "")
        report.add(WARNING, "images_without_annotations", f"{len(report.empty_images)} images",
                   f"{len(report.empty_images)} of {len(images)} images have no annotation "
                   f"({shown})")
    by_category = _groups(annotations, "category_id")
    for category in sorted(categories, key=_id_order):
        own = by_category.get(category["id"], [])
        crowd = sum(1 for a in own if a.get("iscrowd", 0))
        row = {"id": category["id"], "name": str(category["name"]),
               "instances": len(own) - crowd, "crowd": crowd,
               "images": len({a["image_id"] for a in own})}
        report.class_table.append(row)
        if not own and annotations:
            report.add(WARNING, "category_unused", f"category '{row['name']}' (id {row['id']})",
                       "no annotation uses it")


def _id_order(entry: dict[str, Any]) -> tuple[bool, Any]:
    """Sort key: numeric ids in numeric order, then the others as text."""
    value = entry["id"]
    return (False, value) if _is_number(value) else (True, str(value))


def check_coco_dataset(
    ann_file: str | os.PathLike,
    img_dir: str | os.PathLike | None = None,
    class_names: Sequence[str] | None = None,
) -> DatasetReport:
    """Check a COCO annotation file (and its images, when ``img_dir`` is given) completely.

    Args:
        ann_file: the COCO JSON file.
        img_dir: folder of the images; every listed image is opened and fully decoded.
        class_names: the names a config selects; each must be a category name.

    Returns:
        A report of every problem found; ``report.errors`` empty means the data is usable.
    """
    report = DatasetReport(str(ann_file), None if img_dir is None else str(img_dir))
    try:
        data = read_coco_json(report.ann_file)
    except DatasetError as exc:
        report.add(ERROR, "annotation_file", report.ann_file, str(exc))
        return report
    images = _entries(data, "images", _IMAGE_KEYS, report)
    annotations = _entries(data, "annotations", _ANN_KEYS, report)
    categories = _entries(data, "categories", _CATEGORY_KEYS, report)
    _check_categories(categories, report)
    by_id = _check_images(images, report)
    _check_annotations(annotations, by_id, {c["id"] for c in categories}, report)
    if img_dir is None:
        report.add(WARNING, "images_not_checked", report.ann_file, "image files not checked")
    else:
        seen: dict[str, tuple] = {}
        for image in images:
            _check_image_file(image, str(img_dir), report, seen)
    if class_names is not None:
        _check_class_names(class_names, categories, report)
    _summarize(images, annotations, categories, report)
    return report
