"""Configs by name: ``detbox.recipes`` and the ``configs`` / ``print-config`` commands."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from detbox.cli.configs import matches, summary
from detbox.cli.main import main
from detbox.config import load_config
from detbox.errors import ConfigError
from detbox.recipes import config_root, recipe_names, resolve_recipe

REPO_CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def test_the_checkout_serves_its_own_configs_folder():
    assert config_root().resolve() == REPO_CONFIGS.resolve()


def test_recipe_names_are_every_recipe_and_no_base_piece():
    expected = sorted(p.relative_to(REPO_CONFIGS).with_suffix("").as_posix()
                      for p in REPO_CONFIGS.rglob("*.py") if "_base_" not in p.parts)
    assert recipe_names() == expected
    assert "retinanet/retinanet_r50_fpn_1x_coco" in expected


@pytest.mark.parametrize("name", ["retinanet_r50_fpn_1x_coco", "retinanet_r50_fpn_1x_coco.py",
                                  "retinanet/retinanet_r50_fpn_1x_coco",
                                  "retinanet/retinanet_r50_fpn_1x_coco.py",
                                  "configs/retinanet/retinanet_r50_fpn_1x_coco.py"])
def test_names_resolve_to_the_recipe_file(name):
    assert resolve_recipe(name) == config_root() / "retinanet" / "retinanet_r50_fpn_1x_coco.py"


def test_load_config_takes_a_name_where_no_file_exists(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = load_config("faster_rcnn_r50_fpn_1x_coco")
    assert cfg.model.type == "FasterRCNN"
    assert Path(cfg["_filename"]).parent == config_root() / "faster_rcnn"


def test_an_existing_file_wins_over_a_recipe_of_the_same_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "retinanet_r50_fpn_1x_coco.py").write_text("model = dict(type='Mine')\n")
    assert load_config("retinanet_r50_fpn_1x_coco.py").model.type == "Mine"


def test_unknown_names_give_close_matches_or_the_listing_command():
    with pytest.raises(ConfigError, match="did you mean retinanet_r50_fpn_1x_coco"):
        resolve_recipe("retinanet_r50_fpn_1x_cooc")
    with pytest.raises(ConfigError, match="detbox configs PATTERN"):
        resolve_recipe("zzzzzzzz")
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(Path("/nowhere/retinanet_r50_fpn_1x_coco.py"))  # a path stays a path


def test_a_stem_in_two_families_asks_for_the_family(tmp_path, monkeypatch):
    for family in ("a", "b"):
        (tmp_path / family).mkdir()
        (tmp_path / family / "same.py").write_text("model = dict(type='X')\n")
    monkeypatch.setattr("detbox.recipes.config_root", lambda: tmp_path)
    with pytest.raises(ConfigError, match="names 2 recipes: a/same, b/same"):
        resolve_recipe("same")
    assert resolve_recipe("b/same") == tmp_path / "b" / "same.py"


def test_pattern_is_a_substring_or_a_glob():
    assert matches("retinanet/retinanet_r50_fpn_1x_coco", "R50_fpn")
    assert matches("retinanet/retinanet_r50_fpn_1x_coco", "retinanet_*_coco")
    assert matches("retinanet/retinanet_r50_fpn_1x_coco", "retinanet/*")
    assert not matches("retinanet/retinanet_r50_fpn_1x_coco", "*mask*")
    assert matches("x/y", None)


def test_summary_names_model_dataset_and_schedule():
    cfg = {"model": {"type": "RetinaNet"}, "train_cfg": {"max_epochs": 24},
           "train_dataloader": {"dataset": {"type": "RepeatDataset", "times": 2,
                                            "dataset": {"type": "CocoDataset"}}}}
    assert summary(cfg) == ("RetinaNet", "RepeatDataset(CocoDataset)", "24 epochs")
    assert summary({"train_cfg": {"max_iters": 90}}) == ("-", "-", "90 iters")


def test_configs_command_lists_every_recipe(capsys):
    assert main(["configs"]) == 0
    out = capsys.readouterr().out
    for name in recipe_names():
        assert name in out
    row = next(line for line in out.splitlines() if line.startswith("ms_rcnn/") and "coco" in line)
    assert row.split()[1:] == ["MaskScoringRCNN", "CocoDataset", "12", "epochs"]
    assert main(["configs", "no_such_recipe_anywhere"]) == 2


def test_print_config_prints_the_resolved_config(capsys):
    assert main(["print-config", "demo/retinanet_r18_fpn_synthetic", "--cfg-options",
                 "train_cfg.max_epochs=2"]) == 0
    cfg = json.loads(capsys.readouterr().out)
    assert cfg["model"]["backbone"]["depth"] == 18 and cfg["train_cfg"]["max_epochs"] == 2
    assert main(["print-config", "demo/retinanet_r18_fpn_synthetic", "--defaults"]) == 0
    expanded = json.loads(capsys.readouterr().out)
    assert expanded["model"]["bbox_head"]["loss_cls"]["type"] == "FocalLoss"  # a code default
