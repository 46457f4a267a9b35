"""Config values are checked against the constructors' type hints before anything is built."""

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

import pytest
import torch
from torch import nn

import detbox.data  # noqa: F401  (registers datasets and transforms)
import detbox.models  # noqa: F401  (registers model components)
from detbox.apis.build import build_detector, fill_num_classes
from detbox.cli.main import main
from detbox.config import load_config
from detbox.errors import ConfigError
from detbox.registry import DATASETS, MODELS, TRANSFORMS, Registry, check_kwargs
from detbox.typecheck import Positive, Probability, Range, check_value, describe, type_hints
from tests.conftest import REPO_ROOT

CONFIGS = REPO_ROOT / "configs"
DEMO = str(CONFIGS / "demo/retinanet_r18_fpn_synthetic.py")

FITS = [
    (3, int), (3, float), (2.5, float), (True, bool), ("a", str), (None, None),
    (None, int | None), (4, int | None), ("x", Literal["x", "y"]), ([1, 2], Sequence[int]),
    ((1.0, 2), Sequence[float]), ([1, 2], tuple[int, int]), ((1.5, 2.5, 3), tuple[float, ...]),
    ([], list[int]), ({"type": "FPN"}, Mapping[str, Any] | nn.Module),
    (nn.Identity(), Mapping[str, Any] | nn.Module), (object(), Any), (len, Callable[..., Any]),
    ("cpu", torch.device | str), (torch.device("cpu"), torch.device | str),
    (Path("x"), str | Path), (0.5, Annotated[float, Probability]),
    (-1, Annotated[int, Range(ge=-1)]), ("anything", "UnresolvedName"),
    (["horizontal", "vertical"], Sequence[Literal["horizontal", "vertical"]]),
]


@pytest.mark.parametrize("value, hint", FITS)
def test_values_that_fit(value, hint):
    assert check_value(value, hint) is None


MISFITS = [
    ("abc", int, "expected int, got 'abc' (str)"),
    (True, int, "expected int, got True (bool)"),
    (True, float, "expected float"),
    (1.5, int, "expected int"),
    ("yes", bool, "expected bool, got 'yes' (str)"),
    (3, str | None, "expected str or None, got 3 (int)"),
    ("mena", Literal["mean", "sum"],
     "one of 'mean', 'sum', got 'mena' (str); did you mean 'mean'?"),
    ("abc", Sequence[float], "expected list of float"),
    ([1, "a"], Sequence[int], "item 1: expected int, got 'a'"),
    ([1, 2, 3], tuple[int, int], "expected (int, int), got [1, 2, 3] (list); needs 2 items"),
    ([1, 2], Mapping[str, Any] | nn.Module, "expected dict or nn.Module"),
    (1.5, Annotated[float, Probability],
     "expected float >= 0 and <= 1, got 1.5 (float); 1.5 is not <= 1"),
    (0, Annotated[int, Positive], "expected int > 0, got 0"),
    ("x" * 200, int, "..."),
    ("1e-4", float, "expected float, got '1e-4' (str); a number written as text"),
]


@pytest.mark.parametrize("value, hint, message", MISFITS)
def test_values_that_do_not_fit(value, hint, message):
    problem = check_value(value, hint)
    assert problem is not None and message in problem


def test_describe_puts_none_last():
    assert describe(None | int) == "int or None"
    assert describe(tuple[float, ...]) == "tuple of float"


def test_unresolvable_hints_are_skipped():
    def factory(*, size: "NotDefinedAnywhere", count: int = 1):  # noqa: F821
        return size, count

    assert type_hints(factory) == {"count": int}
    check_kwargs(factory, {"size": object(), "count": 2}, where="widget 'factory'")
    with pytest.raises(ConfigError, match="key 'count': expected int"):
        check_kwargs(factory, {"size": 1, "count": "2"}, where="widget 'factory'")


def _resnet(**kw):
    return dict(type="ResNet", **{"depth": 18, **kw})


def _retina(**kw):
    return dict(type="RetinaHead", **{"num_classes": 3, "in_channels": 8, "feat_channels": 8,
                                      "stacked_convs": 1, **kw})


# (registry, config, component, key, shown value, expected type)
WRONG = [
    (MODELS, _resnet(depth="fifty"), "ResNet", "depth", "'fifty'", "one of 18, 34, 50, 101, 152"),
    (MODELS, _resnet(norm_eval="no"), "ResNet", "norm_eval", "'no'", "bool"),
    (MODELS, _retina(nms_pre="abc"), "RetinaHead", "nms_pre", "'abc'", "int >= -1"),
    (MODELS, _retina(score_thr=5), "RetinaHead", "score_thr", "5", "float >= 0 and <= 1"),
    (MODELS, _retina(num_classes=0), "RetinaHead", "num_classes", "0", "int > 0"),
    (MODELS, dict(type="FPN", in_channels=[8, 16], out_channels=-1), "FPN", "out_channels", "-1",
     "int > 0"),
    (MODELS, dict(type="FPN", in_channels=[8, 16], extra_convs="inptu"), "FPN", "extra_convs",
     "'inptu'", "did you mean 'input'?"),
    (MODELS, dict(type="FocalLoss", reduction="avg"), "FocalLoss", "reduction", "'avg'",
     "one of 'none', 'mean', 'sum'"),
    (TRANSFORMS, dict(type="RandomFlip", prob=1.5), "RandomFlip", "prob", "1.5",
     "float >= 0 and <= 1"),
    (TRANSFORMS, dict(type="RandomFlip", direction="horizontl"), "RandomFlip", "direction",
     "'horizontl'", "did you mean 'horizontal'?"),
    (TRANSFORMS, dict(type="Resize", scale=(32, 32), keep_ratio="yes"), "Resize", "keep_ratio",
     "'yes'", "bool"),
    (TRANSFORMS, dict(type="RandomCrop", crop_size=(0.5, 0.5), crop_type="relativ"), "RandomCrop",
     "crop_type", "'relativ'", "did you mean 'relative'?"),
    (TRANSFORMS, dict(type="Pad", size_divisor=0), "Pad", "size_divisor", "0", "int > 0"),
]


@pytest.mark.parametrize("registry, cfg, component, key, shown, expected", WRONG,
                         ids=[f"{w[2]}.{w[3]}" for w in WRONG])
def test_wrong_values_of_real_components(registry, cfg, component, key, shown, expected):
    with pytest.raises(ConfigError) as err:
        registry.build(cfg)
    message = str(err.value)
    assert "\n" not in message
    assert f"'{component}' key '{key}'" in message
    assert f"got {shown} (" in message and expected in message


def test_nested_components_name_their_dotted_path():
    cfg = load_config(DEMO).model.to_dict()
    cfg["bbox_head"]["num_classes"] = 3
    cfg["bbox_head"]["loss_cls"] = dict(type="FocalLoss", gamma="two")
    with pytest.raises(ConfigError) as err:
        MODELS.build(cfg, path="model")
    assert "model 'FocalLoss' key 'gamma' (model.bbox_head.loss_cls.gamma): expected float" in str(
        err.value)
    cfg["bbox_head"]["loss_cls"]["gamma"] = 2.0
    cfg["bbox_head"]["loss_cls"]["gama"] = 2.0
    with pytest.raises(ConfigError, match=r"\(model.bbox_head.loss_cls\) got an unknown key"):
        MODELS.build(cfg, path="model")


def test_path_is_forgotten_after_a_build():
    registry = Registry("widget")

    @registry.register
    def widget(*, size: int = 1):
        return size

    with pytest.raises(ConfigError):
        registry.build(dict(type="widget", size="big"), path="outer")
    with pytest.raises(ConfigError) as err:
        registry.build(dict(type="widget", size="big"))
    assert "(" not in str(err.value).split(":")[0]


def _components(node: Any):
    """Every dict with a ``type`` under ``node``."""
    if isinstance(node, Mapping):
        if "type" in node:
            yield node
        for value in node.values():
            yield from _components(value)
    elif isinstance(node, (list, tuple)):
        for value in node:
            yield from _components(value)


@pytest.mark.parametrize("name", sorted(str(p.relative_to(CONFIGS)) for p in CONFIGS.rglob("*.py")
                                        if p.relative_to(CONFIGS).parts[0] != "_base_"))
def test_every_shipped_config_passes_the_checks(name):
    cfg = load_config(CONFIGS / name).to_dict()
    stated = [c["num_classes"] for c in _components(cfg["model"]) if c.get("num_classes")]
    num_classes = cfg.get("num_classes") or (stated[0] if stated else 3)
    fill_num_classes(cfg, [f"class{i}" for i in range(num_classes)], source="test")
    torch.manual_seed(0)
    build_detector(cfg["model"], class_names=[], cat_ids=[])
    loaders = [cfg.get(k) for k in ("train_dataloader", "val_dataloader", "test_dataloader")]
    datasets = [c for loader in loaders if loader for c in _components(loader["dataset"])
                if c["type"] in DATASETS]
    assert datasets or not any(loaders)
    for dataset in datasets:  # check the values without reading any annotation file
        factory = DATASETS.get(dataset["type"])
        kwargs = {k: v for k, v in dataset.items() if k != "type"}
        check_kwargs(factory, kwargs, where=f"dataset '{dataset['type']}'")
        for transform in dataset.get("pipeline") or ():
            TRANSFORMS.build(transform)


def test_cli_reports_a_wrong_type_in_one_line(tmp_path, capsys):
    code = main(["train", DEMO, "--work-dir", str(tmp_path), "--cfg-options",
                 "model.bbox_head.nms_pre=abc"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and "Traceback" not in err[0], err
    assert "'RetinaHead' key 'nms_pre' (model.bbox_head.nms_pre)" in err[0]
    assert "expected int >= -1, got 'abc' (str)" in err[0]
