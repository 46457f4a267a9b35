"""The recipes shipped with detbox: finding a config by name, and listing them.

The ``configs/`` folder of the source tree is installed as the package data of
``detbox.configs`` (``pyproject.toml`` maps the package onto the folder, so the tree holds one
copy). A recipe is named by its file stem (``retinanet_r50_fpn_1x_coco``), with or without
``.py``, or by its path inside the folder (``retinanet/retinanet_r50_fpn_1x_coco``, optionally
prefixed with ``configs/``); ``_base_`` pieces are not recipes.
"""

from __future__ import annotations

import difflib
import importlib.util
import os
from pathlib import Path

from detbox.errors import ConfigError

__all__ = ["config_root", "recipe_names", "resolve_recipe"]

CONFIG_SUFFIXES = (".py", ".yaml", ".yml", ".json")


def config_root() -> Path:
    """The folder of the shipped configs.

    The installed ``detbox.configs`` package (a wheel, or an editable install's mapping onto
    the source tree), else the ``configs/`` folder beside the package in a source checkout.

    Raises:
        ConfigError: neither exists (a broken install).
    """
    try:
        spec = importlib.util.find_spec("detbox.configs")
    except (ImportError, ValueError):
        spec = None
    for location in (spec.submodule_search_locations or []) if spec else []:
        if Path(location).is_dir():
            return Path(location)
    checkout = Path(__file__).resolve().parents[1] / "configs"
    if checkout.is_dir():
        return checkout
    raise ConfigError("the shipped configs are missing (neither the detbox.configs package nor "
                      f"{checkout} exists); reinstall detbox")


def recipe_names(root: Path | None = None) -> list[str]:
    """Every recipe as ``family/stem`` (no suffix), sorted; ``_base_`` pieces left out."""
    root = config_root() if root is None else root
    names = []
    for path in root.rglob("*"):
        relative = path.relative_to(root)
        if (path.suffix in CONFIG_SUFFIXES and path.is_file() and "_base_" not in relative.parts
                and path.name != "__init__.py" and len(relative.parts) > 1):
            names.append(relative.with_suffix("").as_posix())
    return sorted(names)


def _recipe_file(root: Path, name: str) -> Path:
    for suffix in CONFIG_SUFFIXES:
        if (root / (name + suffix)).is_file():
            return root / (name + suffix)
    return root / name


def resolve_recipe(name: str | os.PathLike) -> Path:
    """The shipped recipe file a name stands for.

    Args:
        name: a stem (``retinanet_r50_fpn_1x_coco``, ``.py`` optional) or a path inside the
            configs folder (``retinanet/retinanet_r50_fpn_1x_coco``, ``configs/`` optional).

    Raises:
        ConfigError: no recipe has that name (one line naming the closest ones), or a stem
            names recipes in two families.
    """
    text = str(name).replace(os.sep, "/")
    key = text[len("configs/"):] if text.startswith("configs/") else text
    key = key[: -len(Path(key).suffix)] if Path(key).suffix in CONFIG_SUFFIXES else key
    root = config_root()
    names = recipe_names(root)
    if key in names:
        return _recipe_file(root, key)
    by_stem = [n for n in names if n.rsplit("/", 1)[-1] == key]
    if len(by_stem) == 1:
        return _recipe_file(root, by_stem[0])
    if by_stem:
        raise ConfigError(f"'{text}' names {len(by_stem)} recipes: {', '.join(by_stem)}; "
                          "give the family too")
    stems = {n.rsplit("/", 1)[-1]: n for n in names}
    close = difflib.get_close_matches(key.rsplit("/", 1)[-1], list(stems), n=3, cutoff=0.6)
    hint = (f"; did you mean {', '.join(close)}?" if close
            else "; `detbox configs PATTERN` lists the recipes")
    raise ConfigError(f"config not found: '{text}' is neither a file nor a recipe name{hint}")
