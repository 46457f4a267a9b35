"""``detbox registry``: the components a config can name, and the generated docs/registry.md."""

from pathlib import Path

import pytest

from detbox.cli.main import main
from detbox.cli.registry import markdown

DOCS = Path(__file__).resolve().parents[1] / "docs"


def test_listing_covers_every_registry_with_arguments_and_summaries(capsys):
    assert main(["registry"]) == 0
    out = capsys.readouterr().out
    for title in ("models:", "task utils:", "datasets:", "transforms:"):
        assert f"\n{title}\n" in f"\n{out}"
    assert "  RetinaHead: Two conv towers" in out
    assert "      num_classes: int > 0 (required)" in out
    assert "      feat_channels: int > 0 = 256" in out
    assert "  MaxIoUAssigner" in out and "  CocoDataset" in out and "  RandomFlip" in out


def test_one_component_in_full_shows_its_args_section(capsys):
    assert main(["registry", "RetinaHead"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("RetinaHead (models, detbox.models.dense_heads.retina_head.RetinaHead)")
    assert "anchor_generator: dict or anything = dict(type='AnchorGenerator'" in out
    assert "\nArgs:\n    num_classes: foreground classes C" in out


def test_a_typo_names_the_closest_component_in_one_line(capsys):
    assert main(["registry", "RetinaHaed"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Did you mean 'RetinaHead'?" in err


def test_components_of_custom_imports_are_listed_with_config(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "registry_cli_parts.py").write_text(
        "from detbox.registry import TRANSFORMS\n\n\n@TRANSFORMS.register\nclass Darken:\n"
        "    \"\"\"Scale pixel values down.\"\"\"\n\n"
        "    def __init__(self, factor: float = 0.5):\n        self.factor = factor\n")
    (tmp_path / "cfg.py").write_text("custom_imports = dict(imports=['registry_cli_parts'])\n")
    assert main(["registry", "Darken", "--config", str(tmp_path / "cfg.py")]) == 0
    out = capsys.readouterr().out
    assert "Darken (transforms, registry_cli_parts.Darken)" in out
    assert "factor: float = 0.5" in out
    assert "Darken" not in markdown()  # the reference page lists detbox's own components


@pytest.mark.parametrize("page", ["registry.md"])
def test_committed_reference_page_is_up_to_date(page):
    expected = markdown()
    assert (DOCS / page).read_text(encoding="utf-8") == expected, (
        "docs/registry.md is out of date: run "
        "'detbox registry --markdown > docs/registry.md'"
    )
