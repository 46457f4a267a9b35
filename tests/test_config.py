import json
import sys
from collections import OrderedDict

import pytest

from detbox.config import ConfigDict, apply_options, dump_config, load_config, parse_options
from detbox.errors import ConfigError


def write(path, text):
    path.write_text(text)
    return path


def test_python_yaml_and_json_configs_agree(tmp_path):
    py = write(tmp_path / "a.py", "model = dict(type='M', depth=18)\nseed = 3\n_helper = 1\n")
    yml = write(tmp_path / "a.yaml", "model:\n  type: M\n  depth: 18\nseed: 3\n")
    js = write(tmp_path / "a.json", json.dumps({"model": {"type": "M", "depth": 18}, "seed": 3}))
    loaded = [load_config(p) for p in (py, yml, js)]
    for cfg in loaded:
        assert cfg.model.depth == 18 and cfg.seed == 3
        assert "_helper" not in cfg


def test_base_merges_one_level_and_delete_replaces(tmp_path):
    write(tmp_path / "base.py", "model = dict(type='M', depth=50, neck=dict(type='FPN', c=256))\n"
                                "seed = 1\n")
    child = write(tmp_path / "child.py",
                  "_base_ = 'base.py'\n"
                  "model = dict(depth=18, neck=dict(_delete_=True, type='X'))\n")
    cfg = load_config(child)
    assert cfg.model.type == "M" and cfg.model.depth == 18
    assert dict(cfg.model.neck) == {"type": "X"}
    assert cfg.seed == 1


def test_base_of_base_is_refused(tmp_path):
    write(tmp_path / "root.py", "seed = 1\n")
    write(tmp_path / "base.py", "_base_ = 'root.py'\n")
    child = write(tmp_path / "child.py", "_base_ = 'base.py'\n")
    with pytest.raises(ConfigError, match="one level"):
        load_config(child)


def test_top_level_typo_is_an_error_with_suggestion(tmp_path):
    cfg = write(tmp_path / "c.py", "optimzer = dict(type='SGD', lr=0.1)\n")
    with pytest.raises(ConfigError) as err:
        load_config(cfg)
    assert "'optimzer'" in str(err.value) and "'optimizer'" in str(err.value)
    assert str(cfg) in str(err.value)


def test_cfg_options_are_typed_and_reach_nested_keys(tmp_path):
    cfg = load_config(write(tmp_path / "c.py",
                            "model = dict(type='M', heads=[dict(n=1), dict(n=2)])\n"
                            "optimizer = dict(type='SGD', lr=0.1)\n"))
    options = parse_options(["optimizer.lr=0.02", "model.heads.1.n=5", "model.name=abc",
                             "model.flags=[1, 2]", "model.on=true", "model.off=None"])
    apply_options(cfg, options)
    assert cfg.optimizer.lr == 0.02 and cfg.model.heads[1].n == 5
    assert cfg.model.name == "abc" and cfg.model.flags == [1, 2]
    assert cfg.model.on is True and cfg.model.off is None


def test_cfg_options_typo_in_path(tmp_path):
    cfg = load_config(write(tmp_path / "c.py", "optimizer = dict(type='SGD', lr=0.1)\n"))
    with pytest.raises(ConfigError, match="Did you mean 'optimizer'"):
        apply_options(cfg, parse_options(["optimiser.lr=1"]))
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_options(["optimizer.lr"])


def test_dump_round_trips_through_json(tmp_path):
    cfg = ConfigDict(model=dict(type="M", sizes=(1, 2)), seed=0)
    dump_config(cfg, tmp_path / "out.json")
    again = load_config(tmp_path / "out.json")
    assert again.model.sizes == [1, 2] and again.seed == 0


def test_attribute_error_suggests(tmp_path):
    cfg = ConfigDict(model=dict(depth=1))
    with pytest.raises(AttributeError, match="Did you mean 'depth'"):
        _ = cfg.model.dept


def test_cfg_options_can_swap_a_component_using_config_variables(tmp_path):
    text = ("train_pipeline = [dict(type='LoadImage')]\n"
            "train_dataloader = dict(dataset=dict(type='Synthetic', split='train'))\n")
    cfg = load_config(write(tmp_path / "c.py", text))
    value = "dict(type='CocoDataset', ann_file='a.json', pipeline=train_pipeline)"
    apply_options(cfg, parse_options([f"train_dataloader.dataset={value}"], context=cfg))
    assert cfg.train_dataloader.dataset.type == "CocoDataset"
    assert "split" not in cfg.train_dataloader.dataset
    assert cfg.train_dataloader.dataset.pipeline == [{"type": "LoadImage"}]
    with pytest.raises(ConfigError, match="cannot evaluate"):
        parse_options(["x=dict(pipeline=unknown_name)"], context=cfg)


def test_base_of_base_error_lists_the_bases_to_use_instead(tmp_path):
    (tmp_path / "pieces").mkdir()
    write(tmp_path / "pieces" / "model.py", "model = dict(type='M')\n")
    write(tmp_path / "recipe.py", "_base_ = ['pieces/model.py']\n")
    child = write(tmp_path / "child.py", "_base_ = 'recipe.py'\n")
    with pytest.raises(ConfigError, match=r"_base_ = \['pieces/model.py'\]"):
        load_config(child)


def test_names_a_python_config_imports_or_defines_are_not_keys(tmp_path):
    path = write(tmp_path / "a.py",
                 "import math\nfrom collections import OrderedDict\nfrom os.path import join\n"
                 "def helper():\n    return 1\n"
                 "class Local:\n    pass\n"
                 "model = dict(type=OrderedDict, depth=helper())\n")
    cfg = load_config(path)
    assert set(cfg) == {"model", "_filename"} and cfg.model.type is OrderedDict


def test_typo_in_a_real_key_is_still_reported(tmp_path):
    path = write(tmp_path / "a.py", "from collections import OrderedDict\nmodle = dict(type=1)\n")
    with pytest.raises(ConfigError, match="'modle'.*Did you mean 'model'"):
        load_config(path)


def test_custom_imports_register_the_users_modules(tmp_path, monkeypatch):
    package = tmp_path / "my_pkg_cfgtest"
    package.mkdir()
    write(package / "__init__.py", "")
    write(package / "parts.py", "LOADED = True\n")
    monkeypatch.chdir(tmp_path)
    path = write(tmp_path / "a.py", "custom_imports = dict(imports=['my_pkg_cfgtest.parts'])\n")
    load_config(path)
    assert sys.modules["my_pkg_cfgtest.parts"].LOADED
    assert str(tmp_path) not in sys.path


def test_a_failed_custom_import_names_the_module_and_the_config(tmp_path):
    path = write(tmp_path / "a.yaml", "custom_imports:\n  imports: [no_such_module_xyz.sub]\n")
    with pytest.raises(ConfigError, match=r"a\.yaml: custom_imports: cannot import "
                                          r"'no_such_module_xyz\.sub'"):
        load_config(path)
    lenient = write(tmp_path / "b.yaml", "custom_imports:\n  imports: [no_such_module_xyz]\n"
                                         "  allow_failed_imports: true\n")
    with pytest.warns(UserWarning, match="no_such_module_xyz"):
        load_config(lenient)
    bad = write(tmp_path / "c.py", "custom_imports = dict(modules=['x'])\n")
    with pytest.raises(ConfigError, match="custom_imports must be dict"):
        load_config(bad)


LOADERS = (
    "train_dataloader = dict(dataset=dict(type='RepeatDataset', times=2, dataset=dict("
    "type='ConcatDataset', datasets=[dict(type='CustomDataset'), dict(type='CocoDataset')])))\n"
    "val_dataloader = dict(dataset=dict(type='CocoDataset'))\n"
)


def test_top_level_class_names_select_every_dataloaders_classes(tmp_path):
    cfg = load_config(write(tmp_path / "a.py", LOADERS + "class_names = ['cat', 'dog']\n"))
    inner = cfg.train_dataloader.dataset.dataset.datasets
    assert [d.class_names for d in inner] == [["cat", "dog"], ["cat", "dog"]]
    assert cfg.val_dataloader.dataset.class_names == ["cat", "dog"]
    apply_options(cfg, parse_options(["class_names=['dog']"]))
    assert cfg.val_dataloader.dataset.class_names == ["dog"]
    assert cfg.train_dataloader.dataset.dataset.datasets[1].class_names == ["dog"]


def test_top_level_class_names_conflicting_with_a_datasets_own_is_an_error(tmp_path):
    text = "val_dataloader = dict(dataset=dict(type='CocoDataset', class_names=['a']))\n"
    with pytest.raises(ConfigError, match="class_names = \\['b'\\] at the top level.*"
                                          "val_dataloader's dataset sets class_names = \\['a'\\]"):
        load_config(write(tmp_path / "a.py", text + "class_names = ['b']\n"))
    with pytest.raises(ConfigError, match="non-empty list"):
        load_config(write(tmp_path / "b.py", "class_names = 'cat'\n"))


def test_a_childs_recipe_variable_that_no_dataloader_uses_is_an_error(tmp_path):
    write(tmp_path / "base.py", "data_root = 'data/coco/'\n"
                                "train_dataloader = dict(dataset=dict(ann_file=data_root + 'a'))\n")
    child = write(tmp_path / "child.py", "_base_ = 'base.py'\ndata_root = 'data/mine/'\n")
    with pytest.raises(ConfigError, match="data_root is only used inside the file"):
        load_config(child)
    rewritten = write(tmp_path / "ok.py", "_base_ = 'base.py'\ndata_root = 'data/mine/'\n"
                      "train_dataloader = dict(dataset=dict(ann_file=data_root + 'a'))\n")
    assert load_config(rewritten).train_dataloader.dataset.ann_file == "data/mine/a"


def test_dataset_type_is_no_longer_an_accepted_key(tmp_path):
    with pytest.raises(ConfigError, match="unknown top-level config key 'dataset_type'"):
        load_config(write(tmp_path / "a.py", "dataset_type = 'CocoDataset'\n"))


def test_a_failed_import_in_a_python_config_is_a_config_error(tmp_path):
    text = "from no_such_module_xyz import Thing\nmodel = dict(type=Thing)\n"
    path = write(tmp_path / "a.py", text)
    with pytest.raises(ConfigError, match=r"a\.py: No module named 'no_such_module_xyz'"):
        load_config(path)


def test_a_childs_test_pipeline_may_use_its_own_img_norm(tmp_path):
    write(tmp_path / "base.py", "img_norm = dict(mean=[0, 0, 0])\ntest_pipeline = []\n")
    child = write(tmp_path / "child.py", "_base_ = 'base.py'\nimg_norm = dict(mean=[1, 1, 1])\n"
                  "test_pipeline = [dict(type='Normalize', **img_norm)]\n")
    assert load_config(child).test_pipeline[0].mean == [1, 1, 1]
