"""A built-in synthetic dataset: coloured circles, squares and triangles on textured backgrounds.

It needs no download, so the demo and the tests can train and evaluate real detectors on it. Every
file is a pure function of the parameters: the same seed gives byte-identical images and JSON.
Masks are exact: a shape is painted on precisely the pixels of its mask, a later shape hides the
part of an earlier one it covers, and the annotation keeps only the visible part.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pycocotools.mask as mask_utils
from PIL import Image

from detbox.data.base import DetectionDataset, PipelineConfig
from detbox.data.coco import CocoAnnotations
from detbox.errors import ConfigError, DatasetError
from detbox.registry import DATASETS

__all__ = [
    "CATEGORIES",
    "SyntheticParams",
    "SyntheticShapesDataset",
    "generate_synthetic_coco",
    "prepare_synthetic_coco",
    "render_image",
    "synthetic_cache_dir",
]

CATEGORIES = (
    {"id": 1, "name": "circle", "supercategory": "shape"},
    {"id": 2, "name": "square", "supercategory": "shape"},
    {"id": 3, "name": "triangle", "supercategory": "shape"},
)
GENERATOR_VERSION = 1  # bump when the images change, so caches of older versions are not reused

_MIN_VISIBLE_FRACTION = 0.4  # an occluded shape must keep this much of its area in view
_MIN_VISIBLE_PIXELS = 16
_PLACEMENT_TRIES = 10
_MIN_COLOR_DISTANCE = 100.0  # RGB distance of a shape's colour from the background's colours


@dataclass(frozen=True)
class SyntheticParams:
    """Everything that determines a generated split (and names its cache folder)."""

    split: str = "train"
    num_images: int = 1000
    image_size: tuple[int, int] = (160, 160)  # (height, width)
    seed: int = 0
    min_size: int = 16
    max_size: int = 64
    max_objects: int = 4

    def check(self) -> None:
        height, width = self.image_size
        if not self.split or not self.split.replace("_", "").replace("-", "").isalnum():
            raise ConfigError(f"synthetic split must be a plain name like 'train', "
                              f"got {self.split!r}")
        if self.num_images < 0 or self.max_objects < 1:
            raise ConfigError("synthetic data needs num_images >= 0 and max_objects >= 1")
        if not 4 <= self.min_size <= self.max_size <= min(height, width):
            raise ConfigError(
                f"synthetic shape sizes need 4 <= min_size ({self.min_size}) <= max_size "
                f"({self.max_size}) <= the smaller image side ({min(height, width)})"
            )

    def to_json(self) -> dict:
        return {"version": GENERATOR_VERSION, **self.__dict__, "image_size": list(self.image_size)}


def as_image_size(image_size: int | tuple[int, int] | list[int]) -> tuple[int, int]:
    """``160`` -> ``(160, 160)``; a pair is ``(height, width)``."""
    if isinstance(image_size, int):
        return (image_size, image_size)
    if len(image_size) != 2:
        raise ConfigError(f"image_size must be an int or (height, width), got {image_size!r}")
    return (int(image_size[0]), int(image_size[1]))


def generate_synthetic_coco(
    root: str | os.PathLike,
    split: str = "train",
    num_images: int = 1000,
    image_size: int | tuple[int, int] = (160, 160),
    seed: int = 0,
    min_size: int = 16,
    max_size: int = 64,
    max_objects: int = 4,
) -> Path:
    """Write ``root/<split>/images/*.png`` and ``root/annotations/instances_<split>.json``.

    Each image holds 1 to ``max_objects`` shapes whose circumscribed diameter is drawn from
    ``[min_size, max_size]``. A shape is only placed where it leaves every earlier shape at least
    40% (and 16 pixels) visible, so no object in an image goes unannotated. Annotations carry
    ``bbox`` (tight ``[x, y, w, h]`` around the visible mask), ``area`` (visible pixels) and
    ``segmentation`` (compressed RLE, ``counts`` a str).

    The split is written into a temporary folder and moved into place, the JSON last, so an
    interrupted run never leaves a JSON that describes missing or partial images.

    Returns:
        The path of the annotation JSON.
    """
    params = SyntheticParams(split, num_images, as_image_size(image_size), seed, min_size,
                             max_size, max_objects)
    params.check()
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    ann_file = root / "annotations" / f"instances_{split}.json"
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{split}-", dir=root))
    try:
        coco = _write_split(params, tmp / "images")
        (tmp / "instances.json").write_text(json.dumps(coco, separators=(",", ":")),
                                            encoding="utf-8")
        ann_file.parent.mkdir(exist_ok=True)
        ann_file.unlink(missing_ok=True)
        shutil.rmtree(root / split, ignore_errors=True)
        (root / split).mkdir()
        os.replace(tmp / "images", root / split / "images")
        os.replace(tmp / "instances.json", ann_file)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return ann_file


def _write_split(params: SyntheticParams, image_dir: Path) -> dict:
    image_dir.mkdir(parents=True)
    height, width = params.image_size
    base = np.random.SeedSequence([params.seed, zlib.crc32(params.split.encode("utf-8"))])
    images, annotations = [], []
    for index, child in enumerate(base.spawn(params.num_images)):
        rng = np.random.default_rng(child)
        pixels, objects = render_image(rng, height, width, params.min_size, params.max_size,
                                       params.max_objects)
        file_name = f"{index:06d}.png"
        Image.fromarray(pixels).save(image_dir / file_name, format="PNG", compress_level=1)
        image_id = index + 1
        images.append({"id": image_id, "file_name": file_name, "width": width, "height": height})
        for category_id, mask in objects:
            annotations.append(_annotation(len(annotations) + 1, image_id, category_id, mask))
    return {
        "info": {"description": "detbox synthetic shapes", "params": params.to_json()},
        "images": images,
        "annotations": annotations,
        "categories": [dict(c) for c in CATEGORIES],
    }


def _annotation(ann_id: int, image_id: int, category_id: int, mask: np.ndarray) -> dict:
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {
        "id": ann_id,
        "image_id": image_id,
        "category_id": category_id,
        "bbox": [float(v) for v in mask_utils.toBbox(rle)],
        "area": float(mask_utils.area(rle)),
        "iscrowd": 0,
        "segmentation": {"size": [int(s) for s in rle["size"]],
                         "counts": rle["counts"].decode("ascii")},
    }


def render_image(
    rng: np.random.Generator, height: int, width: int, min_size: int, max_size: int,
    max_objects: int,
) -> tuple[np.ndarray, list[tuple[int, np.ndarray]]]:
    """Draw one image.

    Returns:
        ``pixels`` (height, width, 3) uint8 and, per visible shape in drawing order,
        ``(category_id, mask (height, width) bool)`` of exactly the pixels it shows.
    """
    background, background_colors = _background(rng, height, width)
    owner = np.full((height, width), -1, dtype=np.int16)  # index of the shape seen at a pixel
    full_area: list[int] = []
    visible_area: list[int] = []
    categories: list[int] = []
    colors: list[np.ndarray] = []
    for _ in range(int(rng.integers(1, max_objects + 1))):
        for _ in range(_PLACEMENT_TRIES):
            category_id = int(rng.integers(1, len(CATEGORIES) + 1))
            diameter = float(rng.integers(min_size, max_size + 1))
            window, mask = _rasterize(rng, category_id, diameter, height, width)
            lost = _pixels_hidden(owner[window][mask], len(full_area))
            remaining = np.asarray(visible_area, dtype=np.int64) - lost
            if np.all(remaining >= np.maximum(_MIN_VISIBLE_FRACTION * np.asarray(full_area),
                                              _MIN_VISIBLE_PIXELS)):
                owner[window][mask] = len(full_area)
                visible_area = remaining.tolist() + [int(mask.sum())]
                full_area.append(int(mask.sum()))
                categories.append(category_id)
                colors.append(_object_color(rng, background_colors + colors))
                break
    pixels = background
    shown = owner >= 0
    if colors:
        pixels[shown] = np.stack(colors)[owner[shown]]
    pixels += rng.normal(0.0, 3.0, size=pixels.shape).astype(np.float32)
    pixels = np.clip(np.rint(pixels), 0, 255).astype(np.uint8)
    return pixels, [(c, owner == k) for k, c in enumerate(categories)]


def _pixels_hidden(owners_under: np.ndarray, num_shapes: int) -> np.ndarray:
    owners_under = owners_under[owners_under >= 0]
    return np.bincount(owners_under, minlength=num_shapes)[:num_shapes]


def _rasterize(
    rng: np.random.Generator, category_id: int, diameter: float, height: int, width: int
) -> tuple[tuple[slice, slice], np.ndarray]:
    """A random placement of a shape fully inside the image: its window and bool mask there.

    A pixel belongs to the shape when its centre ``(x + 0.5, y + 0.5)`` is inside.
    """
    radius = diameter / 2
    cx = rng.uniform(radius, width - radius)
    cy = rng.uniform(radius, height - radius)
    x0, x1 = int(np.floor(cx - radius)), int(np.ceil(cx + radius))
    y0, y1 = int(np.floor(cy - radius)), int(np.ceil(cy + radius))
    xs = np.arange(x0, x1, dtype=np.float64)[None, :] + 0.5 - cx
    ys = np.arange(y0, y1, dtype=np.float64)[:, None] + 0.5 - cy
    if category_id == 1:
        mask = xs**2 + ys**2 <= radius**2
    else:
        corners = 4 if category_id == 2 else 3
        angles = rng.uniform(0, 2 * np.pi) + 2 * np.pi * np.arange(corners) / corners
        mask = _inside_convex_polygon(xs, ys, radius * np.cos(angles), radius * np.sin(angles))
    return (slice(y0, y1), slice(x0, x1)), mask


def _inside_convex_polygon(
    xs: np.ndarray, ys: np.ndarray, vx: np.ndarray, vy: np.ndarray
) -> np.ndarray:
    """Points on the inner side of every edge of a polygon whose vertices go by angle."""
    inside = np.ones(np.broadcast_shapes(xs.shape, ys.shape), dtype=bool)
    for k in range(len(vx)):
        ex, ey = vx[(k + 1) % len(vx)] - vx[k], vy[(k + 1) % len(vy)] - vy[k]
        inside &= ex * (ys - vy[k]) - ey * (xs - vx[k]) >= 0
    return inside


def _background(
    rng: np.random.Generator, height: int, width: int
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Noise, a gradient or stripes between two muted colours: (height, width, 3) float32."""
    first = rng.uniform(40, 215, size=3)
    second = np.clip(first + rng.uniform(-50, 50, size=3), 0, 255)
    kind = int(rng.integers(3))
    if kind == 0:
        base = np.broadcast_to(first, (height, width, 3))
        texture = base + rng.normal(0.0, rng.uniform(6, 16), size=(height, width, 3))
        return texture.astype(np.float32), [first]
    angle = rng.uniform(0, np.pi)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    along = xs * np.cos(angle) + ys * np.sin(angle)
    if kind == 1:
        weight = (along - along.min()) / max(float(np.ptp(along)), 1.0)
    else:
        weight = 0.5 + 0.5 * np.sin(2 * np.pi * along / rng.uniform(6, 24))
    texture = first + weight[..., None] * (second - first)
    return texture.astype(np.float32), [first, second]


def _object_color(rng: np.random.Generator, avoid: list[np.ndarray]) -> np.ndarray:
    """A colour far from the background and earlier shapes (the farthest of a few tries)."""
    best, best_distance = None, -1.0
    for _ in range(20):
        color = rng.uniform(0, 255, size=3)
        distance = min(float(np.linalg.norm(color - a)) for a in avoid)
        if distance > best_distance:
            best, best_distance = color, distance
        if distance >= _MIN_COLOR_DISTANCE:
            break
    return best.astype(np.float32)


def synthetic_cache_dir(params: SyntheticParams) -> Path:
    """``$DETBOX_CACHE/synthetic/<hash>`` or ``~/.cache/detbox/synthetic/<hash>``."""
    base = os.environ.get("DETBOX_CACHE") or os.path.join(os.path.expanduser("~"), ".cache",
                                                          "detbox")
    digest = hashlib.sha256(json.dumps(params.to_json(), sort_keys=True).encode()).hexdigest()
    return Path(base) / "synthetic" / digest[:16]


def prepare_synthetic_coco(root: Path, params: SyntheticParams) -> Path:
    """The split's annotation file under ``root``, generated first if it is not there yet.

    Concurrent callers (several ranks or workers) wait on a lock file so only one generates.

    Raises:
        DatasetError: ``root`` already holds this split made with other parameters.
    """
    params.check()
    ann_file = root / "annotations" / f"instances_{params.split}.json"
    root.mkdir(parents=True, exist_ok=True)
    with _locked(root / f".lock-{params.split}"):
        for stale in root.glob(f".tmp-{params.split}-*"):  # left by a killed generation
            shutil.rmtree(stale, ignore_errors=True)
        if not ann_file.is_file():
            generate_synthetic_coco(root, params.split, params.num_images, params.image_size,
                                    params.seed, params.min_size, params.max_size,
                                    params.max_objects)
    _check_params(ann_file, params)
    return ann_file


def _check_params(ann_file: Path, params: SyntheticParams) -> None:
    try:
        stored = json.loads(ann_file.read_text(encoding="utf-8")).get("info", {}).get("params")
    except (OSError, ValueError) as exc:
        raise DatasetError(f"{ann_file}: cannot read ({exc}); delete it to regenerate") from None
    if stored != params.to_json():
        raise DatasetError(
            f"{ann_file}: made with other synthetic parameters ({stored}) than requested "
            f"({params.to_json()}); delete {ann_file.parent.parent} or choose another root"
        )


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    try:
        import fcntl
    except ImportError:  # no advisory locks (Windows): single-process use is still safe
        yield
        return
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@DATASETS.register
class SyntheticShapesDataset(DetectionDataset):
    """The synthetic shapes split, read as COCO: generated on first use and then cached.

    Args:
        split: split name; mixed into the seed, so ``'val'`` differs from ``'train'``.
        num_images: images in the split.
        image_size: ``(height, width)`` or one int for square images.
        seed: base seed; the same parameters always give the same files.
        root: folder to generate into; default ``$DETBOX_CACHE/synthetic/<params hash>`` or
            ``~/.cache/detbox/synthetic/<params hash>``.
        pipeline: transform configs; default loads boxes and masks and normalizes.
        min_size, max_size: range of the shapes' circumscribed diameters in pixels.
        max_objects: most shapes per image (at least one is always drawn).
        class_names, filter_empty, test_mode: as for CocoDataset.
    """

    def __init__(
        self,
        split: str = "train",
        num_images: int = 1000,
        image_size: int | tuple[int, int] = 160,
        seed: int = 0,
        root: str | os.PathLike | None = None,
        pipeline: PipelineConfig | None = None,
        *,
        min_size: int = 16,
        max_size: int = 64,
        max_objects: int = 4,
        class_names: Sequence[str] | None = None,
        filter_empty: bool = False,
        test_mode: bool = False,
    ) -> None:
        params = SyntheticParams(split, num_images, as_image_size(image_size), seed, min_size,
                                 max_size, max_objects)
        params.check()
        self.root = Path(root) if root is not None else synthetic_cache_dir(params)
        ann_file = prepare_synthetic_coco(self.root, params)
        annotations = CocoAnnotations(ann_file=ann_file, class_names=class_names,
                                      test_mode=test_mode)
        super().__init__(
            annotations=annotations, ann_file=ann_file, img_dir=self.root / split / "images",
            pipeline=pipeline, with_mask=True, filter_empty=filter_empty, test_mode=test_mode,
        )
