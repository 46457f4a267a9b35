"""Fixtures for the data tests: tiny COCO folders written on the fly, and the shared real data."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from coco_factory import write_coco

REPO_ROOT = Path(__file__).resolve().parents[2]
PENNFUDAN = REPO_ROOT / "../shared/data/pennfudan"


@pytest.fixture(scope="session")
def pennfudan() -> Path:
    if not (PENNFUDAN / "annotations" / "instances_val.json").is_file():
        pytest.skip(f"Penn-Fudan test data not found at {PENNFUDAN} (shared data folder absent)")
    return PENNFUDAN


@pytest.fixture
def make_coco(tmp_path: Path) -> Callable[..., tuple[Path, Path]]:
    """``make_coco(images, annotations, categories, **kw) -> (ann_file, img_dir)`` in tmp_path."""

    def make(*args: Any, **kwargs: Any) -> tuple[Path, Path]:
        return write_coco(tmp_path, *args, **kwargs)

    return make
