"""``Albu``: an albumentations pipeline over the image, its boxes, masks and semantic map.

albumentations is an optional dependency: ``pip install 'detbox[albu]'``.
"""

from __future__ import annotations

import types
import warnings
from collections.abc import Mapping, Sequence
from typing import Annotated, Any

import numpy as np
import torch

from detbox.data.transforms.crop import require_training_sample
from detbox.data.transforms.geometric import drop_degenerate_boxes
from detbox.errors import ConfigError
from detbox.registry import TRANSFORMS, closest_match
from detbox.typecheck import Probability

__all__ = ["Albu", "build_albumentations", "load_albumentations"]

_MISSING = "the Albu transform needs the albumentations package: pip install 'detbox[albu]'"
_INDEX_FIELD = "detbox_box_index"  # which input box each output box is


def load_albumentations() -> types.ModuleType:
    """The ``albumentations`` module.

    Raises:
        ConfigError: it is not installed, naming the extra to install.
    """
    try:
        import albumentations
    except ImportError as exc:
        raise ConfigError(f"{_MISSING} ({exc})") from None
    return albumentations


def build_albumentations(cfg: Mapping[str, Any] | Any, module: types.ModuleType) -> Any:
    """An albumentations transform from ``dict(type="Name", **kwargs)``; nested ``transforms``
    lists (``OneOf``, ``SomeOf``, ``Sequential``) are built the same way."""
    if not isinstance(cfg, Mapping):
        return cfg
    if "type" not in cfg:
        raise ConfigError(f"Albu: a transform needs a 'type' (an albumentations class), "
                          f"got {dict(cfg)!r}")
    name = cfg["type"]
    cls = getattr(module, name, None) if isinstance(name, str) else name
    if not isinstance(cls, type):
        names = [n for n in dir(module) if n[:1].isupper()]
        hint = closest_match(str(name), names)
        raise ConfigError(f"Albu: albumentations has no transform {name!r}"
                          + (f" (closest: {hint!r})" if hint else ""))
    kwargs = {k: v for k, v in cfg.items() if k != "type"}
    if "transforms" in kwargs:
        kwargs["transforms"] = [build_albumentations(t, module) for t in kwargs["transforms"]]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            transform = cls(**kwargs)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"Albu: cannot build albumentations.{cls.__name__}: {exc}") from None
    for warning in caught:  # albumentations only warns about unknown arguments
        if "not valid for transform" in str(warning.message):
            raise ConfigError(f"Albu: albumentations.{cls.__name__}: {warning.message}")
        warnings.warn_explicit(warning.message, warning.category, warning.filename,
                               warning.lineno)
    return transform


@TRANSFORMS.register
class Albu:
    """Run an albumentations pipeline on the image, boxes, instance masks and semantic map.

    Boxes go to albumentations in ``pascal_voc`` format (xyxy pixels) with their positions as
    labels, so a box albumentations drops (outside the image, or less visible than
    ``min_visibility``) drops its label and mask too. Masks are detbox's bitmaps (``gt_masks``
    (N, H, W), decoded from polygons or RLE by ``LoadAnnotations``), passed as
    albumentations ``masks``; ``gt_seg`` is passed as its ``mask``. Ignored boxes go through with
    the boxes. The image must still be on the 0-255 scale (before ``Normalize``) and unpadded;
    a float image is rounded to uint8 for albumentations and given back as float32.

    Args:
        transforms: albumentations transforms as ``dict(type="HorizontalFlip", p=0.5)`` (class
            names of the ``albumentations`` module; ``OneOf(transforms=[...])`` nests).
        bbox_params: extra ``albumentations.BboxParams`` keyword arguments (e.g. ``min_area``);
            ``format`` must be ``"pascal_voc"`` if given; ``label_fields`` are set here.
        min_visibility: drop a box keeping less than this fraction of its area.
        skip_img_without_anno: when the pipeline leaves no object of an image that had some,
            keep the image un-augmented instead (detbox datasets cannot skip a sample).

    Raises:
        ConfigError: albumentations missing (naming the ``albu`` extra), an unknown transform
            name (with the closest one) or bad arguments.
    """

    def __init__(
        self,
        transforms: Sequence[Mapping[str, Any]],
        bbox_params: Mapping[str, Any] | None = None,
        min_visibility: Annotated[float, Probability] = 0.0,
        skip_img_without_anno: bool = False,
    ) -> None:
        module = load_albumentations()
        if isinstance(transforms, Mapping) or not isinstance(transforms, Sequence):
            raise ConfigError(f"Albu transforms must be a list of dicts, got {transforms!r}")
        params = {"format": "pascal_voc", "min_visibility": float(min_visibility),
                  **dict(bbox_params or {})}
        if params["format"] != "pascal_voc":
            raise ConfigError("Albu works on xyxy pixel boxes: bbox_params format must be "
                              f"'pascal_voc', got {params['format']!r}")
        params["label_fields"] = [_INDEX_FIELD]
        try:
            box_params = module.BboxParams(**params)
        except TypeError as exc:
            raise ConfigError(f"Albu: bad bbox_params: {exc}") from None
        self.transform_cfgs = [dict(t) for t in transforms]
        built = [build_albumentations(t, module) for t in transforms]
        with warnings.catch_warnings():  # a photometric-only pipeline has no box transform
            warnings.filterwarnings("ignore", message="Got processor for bboxes")
            self.pipeline = module.Compose(built, bbox_params=box_params)
        self.min_visibility = float(min_visibility)
        self.skip_img_without_anno = skip_img_without_anno

    def __call__(self, results: dict[str, Any]) -> dict[str, Any]:
        require_training_sample(results, "Albu", before_normalize=True)
        if "proposals" in results:
            raise ConfigError("Albu does not move proposals: leave it out of pipelines with "
                              "LoadProposals")
        results = drop_degenerate_boxes(results)
        boxes = results["gt_boxes"]
        ignored = results.get("ignored_boxes", boxes.new_zeros((0, 4)))
        inputs = self._inputs(results, torch.cat([boxes, ignored]))
        out = self.pipeline(**inputs)
        kept = np.asarray(out[_INDEX_FIELD], dtype=np.int64)
        kept_gt = kept[kept < len(boxes)]
        if self.skip_img_without_anno and len(boxes) and not len(kept_gt):
            return results
        self._write_back(results, out, kept, kept_gt, len(boxes))
        return results

    @staticmethod
    def _inputs(results: dict[str, Any], all_boxes: torch.Tensor) -> dict[str, Any]:
        image = results["img"]
        array = image if image.dtype == torch.uint8 else image.round().clamp(0, 255).byte()
        inputs = {"image": array.permute(1, 2, 0).contiguous().numpy(),
                  "bboxes": all_boxes.double().numpy().reshape(-1, 4),
                  _INDEX_FIELD: list(range(len(all_boxes)))}
        if "gt_masks" in results and len(results["gt_masks"]):
            inputs["masks"] = list(results["gt_masks"].numpy())
        if "gt_seg" in results:
            inputs["mask"] = results["gt_seg"].numpy()
        return inputs

    @staticmethod
    def _write_back(results: dict[str, Any], out: dict[str, Any], kept: np.ndarray,
                    kept_gt: np.ndarray, num_gt: int) -> None:
        float_image = results["img"].dtype != torch.uint8
        image = torch.from_numpy(np.ascontiguousarray(out["image"])).permute(2, 0, 1)
        results["img"] = image.float() if float_image else image.contiguous()
        height, width = image.shape[-2:]
        results["img_shape"] = (height, width)
        # albumentations works in 0-1 coordinates; its round trip is off by ~1e-6 pixels
        boxes = np.asarray(out["bboxes"], dtype=np.float64).reshape(-1, 4).round(3)
        boxes = torch.from_numpy(boxes.astype(np.float32))
        results["gt_boxes"] = boxes[torch.from_numpy(kept < num_gt)]
        results["gt_labels"] = results["gt_labels"][torch.from_numpy(kept_gt)]
        if "ignored_boxes" in results:
            results["ignored_boxes"] = boxes[torch.from_numpy(kept >= num_gt)]
        if "gt_masks" in results:
            masks = [np.asarray(m) for m in out.get("masks", [])]
            stacked = (torch.from_numpy(np.stack(masks)) if masks
                       else torch.zeros((0, height, width), dtype=torch.uint8))
            results["gt_masks"] = stacked[torch.from_numpy(kept_gt)].to(torch.uint8)
        if "gt_seg" in results:
            results["gt_seg"] = torch.from_numpy(np.ascontiguousarray(out["mask"]))
        drop_degenerate_boxes(results)

    def __repr__(self) -> str:
        return (f"Albu(transforms={self.transform_cfgs}, min_visibility={self.min_visibility}, "
                f"skip_img_without_anno={self.skip_img_without_anno})")
