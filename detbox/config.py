"""Configs: nested dicts read from ``.py``, ``.yaml`` or ``.json`` files.

A config reads top to bottom like a recipe. It may inherit from base files with ``_base_`` (one
level deep); a dict in the child is merged into the base's dict key by key unless it sets
``_delete_=True``. ``--cfg-options a.b.c=value`` overrides parse ``value`` as a Python literal.

A Python config may name components by class (``type=RetinaNet``): names it imports or defines
(classes, functions, modules) are not config keys. ``custom_imports`` imports the user's own
modules before anything is built, so their ``@MODELS.register`` classes exist; a top-level
``class_names`` selects the classes of every dataloader's dataset.
"""

from __future__ import annotations

import ast
import copy
import json
import os
import runpy
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from detbox.errors import ConfigError
from detbox.registry import closest_match
from detbox.utils.imports import cwd_importable, import_custom_modules

__all__ = [
    "ConfigDict",
    "load_config",
    "merge_configs",
    "apply_options",
    "parse_options",
    "config_to_jsonable",
    "dump_config",
    "TOP_LEVEL_KEYS",
    "RECIPE_VARIABLES",
    "import_custom_modules",
    "apply_class_names",
]

# Values a config file defines to write its own dataloader dicts (``pipeline=train_pipeline``).
# Each file is executed on its own, so overriding one in a child changes nothing by itself: a
# child that sets one must also write the dataloaders that use it (``_check_recipe_variables``).
# ``test_pipeline`` is also what ``detbox infer`` runs.
RECIPE_VARIABLES = ("data_root", "img_norm", "train_pipeline", "test_pipeline")
DATALOADER_KEYS = ("train_dataloader", "val_dataloader", "test_dataloader")

# Every top-level key a config may set; anything else is reported as a likely typo.
TOP_LEVEL_KEYS = (
    "model",
    "train_dataloader",
    "val_dataloader",
    "test_dataloader",
    "evaluation",
    "optimizer",
    "lr_schedule",
    "train_cfg",
    "checkpoint",
    "log",
    "work_dir",
    "seed",
    "deterministic",
    "device",
    "load_from",
    "resume",
    "num_classes",
    "class_names",
    *RECIPE_VARIABLES,
    "amp", "auto_scale_lr", "sync_bn", "cpu_fast_path",
    "ema",
    "tta",
    "custom_imports",
)


class ConfigDict(dict):
    """A dict whose keys also read as attributes: ``cfg.model.backbone.depth``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for key, value in self.items():
            super().__setitem__(key, _wrap(value))

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(
                f"config has no key '{name}'.{_suggest(name, list(self))}"
            ) from None

    def __setattr__(self, name: str, value: Any) -> None:
        self[name] = value

    def __setitem__(self, key: str, value: Any) -> None:
        super().__setitem__(key, _wrap(value))

    def __deepcopy__(self, memo: dict) -> ConfigDict:
        return ConfigDict({k: copy.deepcopy(v, memo) for k, v in self.items()})

    def to_dict(self) -> dict:
        return _unwrap(self)


def _wrap(value: Any) -> Any:
    if isinstance(value, Mapping) and not isinstance(value, ConfigDict):
        return ConfigDict(value)
    if isinstance(value, list):
        return [_wrap(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_wrap(v) for v in value)
    return value


def _unwrap(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _unwrap(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_unwrap(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_unwrap(v) for v in value)
    return value


def _suggest(name: str, candidates: list[str]) -> str:
    match = closest_match(name, candidates)
    return f" Did you mean '{match}'?" if match else ""


def _read_file(path: Path) -> dict:
    suffix = path.suffix.lower()
    try:
        if suffix == ".py":
            with cwd_importable():
                namespace = runpy.run_path(str(path))
            return {
                k: v for k, v in namespace.items()
                if not (k.startswith("_") and k != "_base_") and not _is_code(v)
            }
        if suffix in (".yaml", ".yml"):
            with open(path, encoding="utf-8") as f:
                return yaml.safe_load(f) or {}
        if suffix == ".json":
            with open(path, encoding="utf-8") as f:
                return json.load(f)
    except (SyntaxError, yaml.YAMLError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: cannot parse config: {exc}") from exc
    except ImportError as exc:
        raise ConfigError(f"{path}: {exc} (the config's imports run from the current "
                          "directory and PYTHONPATH)") from exc
    raise ConfigError(f"{path}: config files must end in .py, .yaml, .yml or .json")


def _is_code(value: Any) -> bool:
    """Whether a Python config's top-level name is code rather than a config value.

    Classes, functions, modules and other objects a config imports or defines (``from
    detbox.registry import DATASETS``) are not config keys; plain values are.
    """
    return not isinstance(value, (Mapping, list, tuple, str, int, float, type(None), os.PathLike))


def merge_configs(base: Mapping, override: Mapping) -> dict:
    """Merge ``override`` into a copy of ``base``; a dict with ``_delete_=True`` replaces."""
    merged = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, Mapping):
            value = dict(value)
            delete = value.pop("_delete_", False)
            if not delete and isinstance(merged.get(key), Mapping):
                merged[key] = merge_configs(merged[key], value)
                continue
        merged[key] = copy.deepcopy(value)
    return merged


def load_config(path: str | os.PathLike, check_keys: bool = True) -> ConfigDict:
    """Load a config file, resolving ``_base_`` (one level) relative to the file.

    ``path`` may also name a shipped recipe (``retinanet_r50_fpn_1x_coco``, see
    ``detbox.recipes``) when no such file exists. Then the modules in ``custom_imports`` are
    imported (so that their components are registered) and a top-level ``class_names`` is
    copied into every dataloader's dataset.
    """
    path = Path(path)
    if not path.is_file():
        path = _named_recipe(path)
    cfg = _read_file(path)
    bases = cfg.pop("_base_", [])
    if isinstance(bases, (str, os.PathLike)):
        bases = [bases]
    merged: dict = {}
    for base in bases:
        base_path = (path.parent / base).resolve()
        if not base_path.is_file():
            raise ConfigError(f"{path}: _base_ file not found: {base_path}")
        base_cfg = _read_file(base_path)
        if "_base_" in base_cfg:
            raise ConfigError(
                f"{base_path}: a base config cannot have its own _base_ (inheritance is one level "
                "deep so a config reads top to bottom); list its bases in yours instead: "
                f"_base_ = {_rebased(base_cfg['_base_'], base_path.parent, path.parent)!r}"
            )
        merged = merge_configs(merged, base_cfg)
    if bases:
        _check_recipe_variables(cfg, merged, str(path))
    merged = merge_configs(merged, cfg)
    if check_keys:
        check_top_level_keys(merged, source=str(path))
    import_custom_modules(merged.get("custom_imports"), source=str(path))
    apply_class_names(merged, source=str(path))
    result = ConfigDict(merged)
    result["_filename"] = str(path)
    return result


def _named_recipe(path: Path) -> Path:
    """The shipped recipe that a relative path which is no file names (else ConfigError)."""
    if path.is_absolute() or path.is_dir():
        raise ConfigError(f"config file not found: {path}")
    from detbox.recipes import resolve_recipe

    return resolve_recipe(path)


def _check_recipe_variables(child: Mapping, bases: Mapping, source: str) -> None:
    """Refuse a child's new ``data_root`` (etc.) that nothing of its own can use.

    Only the child's own dataloaders (or, for ``data_root`` and ``img_norm``, its own
    ``test_pipeline``) can use its values; MMDetection users often expect the base's to change.
    """
    if any(key in child for key in DATALOADER_KEYS):
        return
    for key in ("data_root", "img_norm", "train_pipeline"):
        if key != "train_pipeline" and "test_pipeline" in child:
            continue
        if key in child and key in bases and child[key] != bases[key]:
            raise ConfigError(
                f"{source}: {key} is only used inside the file that defines it (each config file "
                f"is executed on its own), so changing it here changes no dataloader; override "
                f"the dataloader keys instead, e.g. train_dataloader = dict(dataset=dict(...))"
            )


def _leaf_datasets(node: Any) -> list[dict]:
    """The dataset dicts under a dataset config, looking through Concat/Repeat wrappers."""
    if not isinstance(node, dict):
        return []
    if isinstance(node.get("datasets"), (list, tuple)):
        return [leaf for d in node["datasets"] for leaf in _leaf_datasets(d)]
    if isinstance(node.get("dataset"), dict):
        return _leaf_datasets(node["dataset"])
    return [node]


def apply_class_names(cfg: dict, source: str = "config", previous: Any = None) -> None:
    """Copy a top-level ``class_names`` into every dataloader's dataset (as ``metainfo``).

    A dataset that sets other ``class_names`` of its own is an error; one that sets
    ``previous`` (the top-level value being replaced by ``--cfg-options``) takes the new value.
    """
    names = cfg.get("class_names")
    if names is None:
        return
    if isinstance(names, str) or not isinstance(names, (list, tuple)) or not names:
        raise ConfigError(f"{source}: class_names must be a non-empty list of names, "
                          f"got {names!r}")
    for section in DATALOADER_KEYS:
        loader = cfg.get(section)
        if not isinstance(loader, dict):
            continue
        for dataset in _leaf_datasets(loader.get("dataset")):
            own = dataset.get("class_names")
            if own is None or own == previous or list(own) == list(names):
                dataset["class_names"] = list(names)
                continue
            raise ConfigError(
                f"{source}: class_names = {list(names)} at the top level, but {section}'s "
                f"dataset sets class_names = {list(own)}; keep one of them"
            )


def _rebased(bases: Any, base_dir: Path, child_dir: Path) -> list[str]:
    """``bases`` (relative to ``base_dir``) as paths relative to ``child_dir``."""
    bases = [bases] if isinstance(bases, (str, os.PathLike)) else list(bases)
    return [
        os.path.relpath((base_dir / b).resolve(), child_dir.resolve()).replace(os.sep, "/")
        for b in bases
    ]


def check_top_level_keys(cfg: Mapping, source: str) -> None:
    """Raise ConfigError for a top-level key no code reads (naming the closest real one)."""
    for key in cfg:
        if key.startswith("_") or key in TOP_LEVEL_KEYS:
            continue
        raise ConfigError(
            f"{source}: unknown top-level config key '{key}'.{_suggest(key, list(TOP_LEVEL_KEYS))} "
            f"Prefix helper variables with '_' to keep them out of the config."
        )


def parse_value(text: str, context: Mapping[str, Any] | None = None) -> Any:
    """Parse a ``--cfg-options`` value: a Python literal, true/false/null, or else a string.

    A value that looks like an expression (``dict(type='X', pipeline=test_pipeline)``) is
    evaluated with ``dict``/``list``/``tuple`` and the config's own top-level keys in scope, so
    a whole component can be swapped from the command line.
    """
    lowered = text.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("none", "null"):
        return None
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        pass
    if context is not None and any(c in text for c in "([{"):
        scope = {"dict": dict, "list": list, "tuple": tuple, **copy.deepcopy(dict(context))}
        try:
            return eval(text, {"__builtins__": {}}, scope)  # noqa: S307 - the user's own CLI text
        except Exception as exc:
            raise ConfigError(f"--cfg-options: cannot evaluate '{text}': {exc}") from exc
    return text


def parse_options(
    options: Iterable[str], context: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Turn ``["a.b=1", "c=[1,2]"]`` into ``{"a.b": 1, "c": [1, 2]}`` (see ``parse_value``)."""
    parsed = {}
    for option in options:
        if "=" not in option:
            raise ConfigError(f"--cfg-options expects KEY=VALUE, got '{option}'")
        key, value = option.split("=", 1)
        parsed[key.strip()] = parse_value(value, context)
    return parsed


def apply_options(cfg: ConfigDict, options: Mapping[str, Any]) -> ConfigDict:
    """Set dotted keys (``model.bbox_head.num_classes``; list items by index: ``a.0.b``)."""
    previous_class_names = copy.deepcopy(cfg.get("class_names"))
    for dotted, value in options.items():
        parts = dotted.split(".")
        node: Any = cfg
        for depth, part in enumerate(parts[:-1]):
            node = _child(node, part, ".".join(parts[: depth + 1]))
        last = parts[-1]
        if isinstance(node, list):
            node[_index(node, last, dotted)] = _wrap(value)
        elif isinstance(node, Mapping):
            if node is cfg and last not in TOP_LEVEL_KEYS and last not in cfg:
                raise ConfigError(
                    f"--cfg-options: unknown top-level key '{last}'."
                    f"{_suggest(last, list(TOP_LEVEL_KEYS))}"
                )
            node[last] = value
        else:
            raise ConfigError(f"--cfg-options: '{dotted}' goes into a {type(node).__name__}")
    if "class_names" in options:
        apply_class_names(cfg, "--cfg-options", previous=previous_class_names)
    return cfg


def _child(node: Any, part: str, path: str) -> Any:
    if isinstance(node, list):
        return node[_index(node, part, path)]
    if isinstance(node, Mapping):
        if part not in node:
            raise ConfigError(
                f"--cfg-options: config has no key '{path}'.{_suggest(part, list(node))}"
            )
        return node[part]
    raise ConfigError(f"--cfg-options: '{path}' is a {type(node).__name__}, not a dict or list")


def _index(node: list, part: str, path: str) -> int:
    try:
        index = int(part)
        node[index]
        return index
    except (ValueError, IndexError):
        raise ConfigError(
            f"--cfg-options: '{path}' needs a list index below {len(node)}, got '{part}'"
        ) from None


def config_to_jsonable(value: Any) -> Any:
    """Plain JSON types only: classes become their names, tuples become lists."""
    if isinstance(value, Mapping):
        return {str(k): config_to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [config_to_jsonable(v) for v in value]
    if isinstance(value, type) or callable(value):
        return getattr(value, "__name__", repr(value))
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return repr(value)


def dump_config(cfg: Mapping, path: str | os.PathLike) -> None:
    """Write the resolved config as JSON (atomically), loadable again by ``load_config``."""
    from detbox.utils.io import atomic_write_text

    data = {k: v for k, v in config_to_jsonable(cfg).items() if k != "_filename"}
    atomic_write_text(path, json.dumps(data, indent=2) + "\n")
