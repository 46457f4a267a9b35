"""The shipped configs keep their meaning when they are rewritten.

``tests/fixtures/resolved_configs.json`` holds every recipe under configs/ expanded with the
constructors' defaults (``detbox.config_defaults.expand_defaults``), generated from the configs
before they were shortened into ``_base_`` pieces. A config that now omits a setting equal to the
code's default expands to the same dict; one that changed a setting does not.

A neck without ``in_channels`` gets the backbone's channels when the detector is built; the
expansion records that derived value, so a recipe that leaves ``in_channels`` to the backbone
compares equal to the old one that spelled out ``[256, 512, 1024, 2048]``.

After an intended change of meaning (a new recipe, a changed constructor default), regenerate:
``PYTHONPATH=$PWD python tests/fixtures/make_resolved_configs.py``.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from detbox.config import load_config
from detbox.config_defaults import expand_defaults

REPO_ROOT = Path(__file__).resolve().parents[1]
FIXTURE_DIR = REPO_ROOT / "tests" / "fixtures"
_spec = importlib.util.spec_from_file_location(
    "make_resolved_configs", FIXTURE_DIR / "make_resolved_configs.py")
make_resolved = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(make_resolved)

EXPECTED = json.loads((FIXTURE_DIR / "resolved_configs.json").read_text())
RECIPES = [p.relative_to(REPO_ROOT).as_posix() for p in make_resolved.recipe_paths()]


def test_every_recipe_is_in_the_fixture():
    assert sorted(RECIPES) == sorted(EXPECTED)


@pytest.mark.parametrize("recipe", RECIPES)
def test_recipe_expands_to_the_fixture(recipe):
    resolved = expand_defaults(load_config(REPO_ROOT / recipe))
    expected = EXPECTED[recipe]
    for section in sorted(set(resolved) | set(expected)):
        assert resolved.get(section) == expected.get(section), f"{recipe}: section '{section}'"


def test_expansion_fills_nested_defaults_and_normalizes_tuples():
    cfg = {"model": {"type": "RetinaNet", "backbone": {"type": "ResNet", "depth": 18},
                     "neck": {"type": "FPN", "out_channels": 64},
                     "bbox_head": {"type": "RetinaHead", "num_classes": 3}}}
    expanded = expand_defaults(cfg)["model"]
    assert expanded["backbone"]["out_indices"] == [1, 2, 3]
    assert expanded["neck"]["in_channels"] == [128, 256, 512]  # derived from the backbone
    assert expanded["bbox_head"]["loss_cls"]["type"] == "FocalLoss"
    assert expanded["bbox_head"]["loss_cls"]["reduction"] == "mean"  # a default's own default


def test_expansion_leaves_plain_sections_and_unknown_types_alone():
    cfg = {"optimizer": {"type": "SGD", "lr": 0.02}, "seed": (1, 2), "_filename": "x.py"}
    assert expand_defaults(cfg) == {"optimizer": {"type": "SGD", "lr": 0.02}, "seed": [1, 2]}
