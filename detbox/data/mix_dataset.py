"""A dataset whose pipeline may mix several of its images into one (copy-paste).

The wrapped dataset loads an image and its annotations (its pipeline stops before
``PackDetInputs``); the wrapper's pipeline then runs, and a transform that mixes images (one
with a ``num_mix_images`` attribute, such as ``CopyPaste``) receives that many other loaded
samples, drawn at random from the same dataset, in ``results["mix_results"]``::

    train_dataloader = dict(dataset=dict(
        type="MultiImageMixDataset",
        dataset=dict(type="CocoDataset", ann_file=..., img_dir=..., filter_empty=True,
                     pipeline=[dict(type="LoadImage"), dict(type="LoadAnnotations",
                                                            with_mask=True)]),
        pipeline=[dict(type="CopyPaste"), dict(type="Resize"), dict(type="RandomFlip"),
                  dict(type="Normalize", **img_norm), dict(type="PackDetInputs")]))
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from torch.utils.data import Dataset

from detbox.data.dataset_wrappers import DatasetWrapper
from detbox.data.skipping import UnreadableImage
from detbox.data.transforms import Compose
from detbox.errors import ConfigError
from detbox.registry import DATASETS

__all__ = ["MultiImageMixDataset"]


@DATASETS.register
class MultiImageMixDataset(DatasetWrapper):
    """Run ``pipeline`` on the wrapped dataset's loaded samples, feeding mixing transforms.

    Keeps the dataset interface (``class_names``, ``cat_ids``, ``coco``, ``aspect_ratios``,
    ``get_record``, ``ann_file``): a mixing transform keeps the size of the image it pastes
    onto, so the aspect ratios stay those of the wrapped dataset.

    Args:
        dataset: a dataset config or a built dataset; its pipeline must return the results
            dict (load the image and annotations, do not pack).
        pipeline: transform configs or callables run on each sample.

    Raises:
        ConfigError: the wrapped pipeline packs its samples (found on the first item).
    """

    def __init__(
        self,
        dataset: Mapping[str, Any] | Dataset,
        pipeline: Sequence[Mapping[str, Any] | Callable[..., Any]],
    ) -> None:
        self.dataset = DATASETS.build(dataset)
        self.pipeline = Compose(pipeline)

    def _loaded(self, index: int) -> dict[str, Any]:
        return self._checked(self.dataset[index])

    @staticmethod
    def _checked(results: Any) -> dict[str, Any]:
        if not isinstance(results, dict):
            raise ConfigError(
                "MultiImageMixDataset: the wrapped dataset's pipeline must end before "
                "PackDetInputs (load the image and annotations only); move the other "
                f"transforms to the wrapper's pipeline (got a {type(results).__name__})"
            )
        return results

    def __getitem__(self, index: int) -> Any:
        results = self.dataset[index]
        if isinstance(results, UnreadableImage):  # a test-mode dataset reports, not retries
            return results
        results = self._checked(results)
        for transform in self.pipeline.transforms:
            count = int(getattr(transform, "num_mix_images", 0))
            if count and isinstance(results, dict):
                results["mix_results"] = [self._loaded(random.randrange(len(self)))
                                          for _ in range(count)]
            results = transform(results)
            if isinstance(results, dict):
                results.pop("mix_results", None)
        return results

    def __repr__(self) -> str:
        return f"MultiImageMixDataset({self.dataset!r}, pipeline={self.pipeline!r})"
