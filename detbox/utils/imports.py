"""Importing the user's own modules by name, so that their components register themselves."""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
import types
import warnings
from collections.abc import Iterator, Mapping
from typing import Any

from detbox.errors import ConfigError

__all__ = ["cwd_importable", "import_custom_modules"]


def import_custom_modules(section: Any, source: str = "config") -> list[types.ModuleType]:
    """Import ``custom_imports=dict(imports=[...], allow_failed_imports=False)``.

    The modules register their components (``@MODELS.register``) when imported, so a config
    can name them by ``type``. The current directory is searched too, as ``python -m`` would.

    Args:
        section: the config's ``custom_imports`` value (None: nothing to import).
        source: the config file, named in errors.

    Returns:
        The imported modules.

    Raises:
        ConfigError: a malformed section, or a module that cannot be imported (unless
            ``allow_failed_imports=True``, which warns instead).
    """
    if section is None:
        return []
    if not isinstance(section, Mapping) or set(section) - {"imports", "allow_failed_imports"}:
        raise ConfigError(
            f"{source}: custom_imports must be dict(imports=['my_pkg.my_module'], "
            f"allow_failed_imports=False), got {section!r}"
        )
    names = section.get("imports", [])
    names = [names] if isinstance(names, str) else list(names)
    if not all(isinstance(n, str) for n in names):
        raise ConfigError(f"{source}: custom_imports.imports must be module names, got {names!r}")
    allow_failed = bool(section.get("allow_failed_imports", False))
    modules = []
    with cwd_importable():
        for name in names:
            try:
                modules.append(importlib.import_module(name))
            except Exception as exc:  # noqa: BLE001 - any failure is reported with the module
                message = (f"{source}: custom_imports: cannot import '{name}' "
                           f"({type(exc).__name__}: {exc})")
                if not allow_failed:
                    raise ConfigError(message) from exc
                warnings.warn(message, stacklevel=2)
    return modules


@contextlib.contextmanager
def cwd_importable() -> Iterator[None]:
    """Modules in the current directory import (as under ``python -m``) while inside."""
    cwd = os.getcwd()
    added = cwd not in sys.path
    if added:
        sys.path.append(cwd)
    try:
        yield
    finally:
        if added and cwd in sys.path:
            sys.path.remove(cwd)
