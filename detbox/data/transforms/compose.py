"""A pipeline: transforms applied in order to one results dict."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from detbox.errors import ConfigError
from detbox.registry import TRANSFORMS

__all__ = ["Compose"]


class Compose:
    """Apply transforms in order.

    Args:
        transforms: transform configs (``dict(type='Resize', ...)``) or callables. Each takes
            the results dict and returns it; the last one (usually ``PackDetInputs``) may
            return anything, e.g. ``(image, DetSample)``.
    """

    def __init__(self, transforms: Sequence[Mapping[str, Any] | Callable[..., Any]]) -> None:
        if isinstance(transforms, (str, Mapping)) or not isinstance(transforms, Sequence):
            raise ConfigError(f"a pipeline must be a list of transforms, got {transforms!r}")
        self.transforms = [TRANSFORMS.build(t) for t in transforms]
        for transform in self.transforms:
            if not callable(transform):
                raise ConfigError(f"pipeline entry {transform!r} is not callable")

    def __call__(self, results: dict[str, Any]) -> Any:
        for transform in self.transforms:
            results = transform(results)
        return results

    def __len__(self) -> int:
        return len(self.transforms)

    def __repr__(self) -> str:
        inner = ",\n  ".join(repr(t) for t in self.transforms)
        return f"Compose([\n  {inner}\n])"
