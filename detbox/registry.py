"""String registries that turn ``dict(type=..., **kwargs)`` configs into objects.

A config names a component by its registered name (a string, so YAML and JSON work) or by the
class itself (in Python configs, so the name greps). ``build`` checks every key against the
constructor's signature, so a typo is an error that names the key, the component and the closest
valid key instead of a silently ignored setting; every value is checked against the
constructor's type hints (see ``detbox.typecheck``). Components built inside other components'
constructors are named in errors by their dotted place in the config (``model.bbox_head``).
"""

from __future__ import annotations

import contextvars
import difflib
import inspect
from collections.abc import Callable, Mapping
from typing import Any

from detbox.errors import ConfigError
from detbox.typecheck import check_values

__all__ = [
    "Registry", "MODELS", "TASK_UTILS", "DATASETS", "TRANSFORMS", "check_kwargs", "closest_match",
    "nested_path",
]

# The build in progress (its dotted path and keyword arguments), so that a component built inside
# another one's constructor can name its own place in the config.
_BUILDING: contextvars.ContextVar[tuple[str, Mapping[str, Any]] | None] = contextvars.ContextVar(
    "detbox_building", default=None
)


def closest_match(name: str, candidates: list[str] | tuple[str, ...]) -> str | None:
    """The candidate most similar to ``name``, or None when nothing is close."""
    matches = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.5)
    return matches[0] if matches else None


def _did_you_mean(name: str, candidates: list[str]) -> str:
    match = closest_match(name, candidates)
    return f" Did you mean '{match}'?" if match else ""


class Registry:
    """Maps names to classes (or factory functions) of one kind of component."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Callable[..., Any]] = {}

    def __contains__(self, name: str) -> bool:
        return name in self._entries

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {sorted(self._entries)})"

    @property
    def names(self) -> list[str]:
        return sorted(self._entries)

    def items(self) -> list[tuple[str, Callable[..., Any]]]:
        """``(name, class or function)`` pairs, sorted by name."""
        return sorted(self._entries.items())

    def register(self, obj: Callable[..., Any] | None = None, *, name: str | None = None):
        """Register a class or function: ``@REG.register`` or ``@REG.register(name=...)``."""

        def add(target: Callable[..., Any]) -> Callable[..., Any]:
            key = name or target.__name__
            known = self._entries.get(key)
            if known is not None and known is not target and _origin(known) != _origin(target):
                raise ConfigError(
                    f"{self.kind} registry already has an entry named '{key}' "
                    f"({_origin(known)}); cannot register {_origin(target)} under the same "
                    "name: pass name=... to register it under another one"
                )
            # The same class defined again (a config file executed twice, a module reloaded)
            # replaces the old definition.
            self._entries[key] = target
            return target

        return add(obj) if obj is not None else add

    def get(self, name: str) -> Callable[..., Any]:
        if name not in self._entries:
            raise ConfigError(
                f"unknown {self.kind} type '{name}'.{_did_you_mean(name, self.names)} "
                f"Registered: {', '.join(self.names)}"
            )
        return self._entries[name]

    def build(
        self, cfg: Mapping[str, Any] | Any, *, path: str | None = None, **defaults: Any
    ) -> Any:
        """Build ``cfg``; an already-built object (not a mapping) is returned unchanged.

        Args:
            cfg: ``dict(type=..., **kwargs)``, or an object to pass through.
            path: the config's dotted place (e.g. ``'model'``), named in errors. Builds nested
                in another component's constructor find theirs when ``cfg`` is one of that
                component's values.
            **defaults: fill keys the config does not set (e.g. ``num_classes`` from the dataset).
        """
        if not isinstance(cfg, Mapping):
            return cfg
        if "type" not in cfg:
            raise ConfigError(
                f"a {self.kind} config needs a 'type' key naming one of: {', '.join(self.names)}; "
                f"got keys {sorted(cfg)}"
            )
        kwargs = {k: v for k, v in cfg.items() if k != "type"}
        for key, value in defaults.items():
            kwargs.setdefault(key, value)
        target = cfg["type"]
        factory = self.get(target) if isinstance(target, str) else target
        path = path or nested_path(cfg)
        check_kwargs(factory, kwargs, where=f"{self.kind} '{_name_of(factory)}'", path=path)
        token = _BUILDING.set((path, kwargs) if path else None)
        try:
            return factory(**kwargs)
        finally:
            _BUILDING.reset(token)


def _origin(obj: Any) -> str:
    """``module.QualifiedName`` of a class or function."""
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', repr(obj))}"


def nested_path(cfg: Mapping[str, Any]) -> str | None:
    """The dotted path of ``cfg`` when it is a value (or list item) of the build in progress."""
    building = _BUILDING.get()
    if building is None:
        return None
    parent_path, parent_kwargs = building
    for key, value in parent_kwargs.items():
        if value is cfg:
            return f"{parent_path}.{key}"
        if isinstance(value, (list, tuple)):
            for index, item in enumerate(value):
                if item is cfg:
                    return f"{parent_path}.{key}.{index}"
    return None


def _name_of(factory: Callable[..., Any]) -> str:
    return getattr(factory, "__name__", repr(factory))


def check_kwargs(
    factory: Callable[..., Any], kwargs: Mapping[str, Any], where: str, path: str | None = None
) -> None:
    """Raise ConfigError for unknown keys, missing required keys or values of the wrong type.

    Args:
        factory: the class or function about to be called with ``kwargs``.
        kwargs: its keyword arguments.
        where: the component named in errors, e.g. ``"model 'RetinaHead'"``.
        path: the component's dotted place in the config (e.g. ``model.bbox_head``), if known.
    """
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):  # builtins without a signature: let the call decide
        return
    params = signature.parameters
    named = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    accepted = [n for n, p in params.items() if p.kind in named]
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        place = f" ({path})" if path else ""
        for key in kwargs:
            if key not in accepted:
                raise ConfigError(
                    f"{where}{place} got an unknown key '{key}'.{_did_you_mean(key, accepted)} "
                    f"Valid keys: {', '.join(accepted)}"
                )
        missing = [
            n for n, p in params.items()
            if p.default is inspect.Parameter.empty and n not in kwargs and p.kind in named
        ]
        if missing:
            raise ConfigError(f"{where}{place} is missing required key(s): {', '.join(missing)}")
    check_values(factory, kwargs, where, path)


MODELS = Registry("model")
TASK_UTILS = Registry("task util")
DATASETS = Registry("dataset")
TRANSFORMS = Registry("transform")
