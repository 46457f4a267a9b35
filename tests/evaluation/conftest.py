"""Shared fixtures: the Penn-Fudan val ground truth and detections simulated from it."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.evaluation.cocoeval_reference import pennfudan_val_or_skip
from tests.evaluation.cocoeval_reference import reference_cocoeval as _reference_cocoeval
from tests.evaluation.simulate import simulate_detections


@pytest.fixture(scope="session")
def pennfudan_val() -> Path:
    return pennfudan_val_or_skip()


@pytest.fixture(scope="session")
def bbox_results(pennfudan_val: Path) -> list[dict]:
    return simulate_detections(pennfudan_val, seed=0)


@pytest.fixture(scope="session")
def segm_results(pennfudan_val: Path) -> list[dict]:
    return simulate_detections(pennfudan_val, seed=1, with_masks=True)


@pytest.fixture(scope="session")
def reference_cocoeval():
    """A function running pycocotools directly, to compare detbox against."""
    return _reference_cocoeval
