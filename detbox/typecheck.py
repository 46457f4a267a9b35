"""Config values checked against the type hints of the constructor they are passed to.

``Registry.build`` already refuses unknown keys; this module does the same for values, so
``nms_pre='abc'`` or ``prob=1.5`` is one line naming the component, the key, the value and the
expected type, before the constructor runs and fails somewhere deep inside with a traceback.

The checker understands the annotations detbox constructors use: ``int``, ``float`` (an int is
a fine float; a bool is neither), ``bool``, ``str``, ``None``, unions, ``Literal[...]``,
sequences (``Sequence[float]``, ``list[int]``, ``tuple[int, int]``, ``tuple[float, ...]``),
mappings, ``Callable``, ``Any`` and plain classes (``nn.Module``, ``torch.device``). A YAML
list is a fine tuple. Whatever it does not understand it accepts, so a hint it cannot read
never turns a valid config into an error.

Ranges are stated next to the type with ``typing.Annotated``::

    prob: Annotated[float, Probability] = 0.5
    out_channels: Annotated[int, Positive] = 256
    nms_pre: Annotated[int, Range(ge=-1)] = 1000
"""

from __future__ import annotations

import collections.abc as cabc
import difflib
import functools
import inspect
import numbers
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from detbox.errors import ConfigError

__all__ = [
    "Range", "Positive", "NonNegative", "Probability",
    "check_value", "check_values", "describe", "type_hints",
]

_MAX_REPR = 60
_SEQUENCES = (cabc.Sequence, cabc.MutableSequence, list, tuple)
_MAPPINGS = (cabc.Mapping, cabc.MutableMapping, dict)
_CALLABLES = (cabc.Callable,)


@dataclass(frozen=True)
class Range:
    """Bounds a number must satisfy: ``Range(ge=0, le=1)`` means ``0 <= value <= 1``.

    Attributes:
        ge: inclusive lower bound.
        gt: exclusive lower bound.
        le: inclusive upper bound.
        lt: exclusive upper bound.
    """

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None

    def _bounds(self) -> list[tuple[str, float, Callable[[Any, Any], bool]]]:
        pairs = [(">=", self.ge, lambda v, b: v >= b), (">", self.gt, lambda v, b: v > b),
                 ("<=", self.le, lambda v, b: v <= b), ("<", self.lt, lambda v, b: v < b)]
        return [(op, bound, test) for op, bound, test in pairs if bound is not None]

    def violation(self, value: Any) -> str | None:
        """Why ``value`` is out of range (e.g. ``'1.5 is not <= 1'``), or None when inside."""
        for op, bound, test in self._bounds():
            if not test(value, bound):
                return f"{value!r} is not {op} {bound}"
        return None

    def __str__(self) -> str:
        return " and ".join(f"{op} {bound}" for op, bound, _ in self._bounds())


Positive = Range(gt=0)
NonNegative = Range(ge=0)
Probability = Range(ge=0, le=1)


def _short_repr(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _MAX_REPR else text[: _MAX_REPR - 3] + "..."


def _class_name(cls: type) -> str:
    if cls is type(None):
        return "None"
    module = getattr(cls, "__module__", "")
    if module.startswith("torch.nn"):
        return f"nn.{cls.__name__}"
    if module == "torch" or module.startswith("torch."):
        return f"torch.{cls.__name__}"
    return getattr(cls, "__name__", repr(cls))


def describe(hint: Any) -> str:
    """A short, user-facing name of an annotation: ``'int or None'``, ``'list of float'``."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return "anything"
    if hint is None or hint is type(None):
        return "None"
    if origin is typing.Annotated:
        ranges = [str(m) for m in hint.__metadata__ if isinstance(m, Range)]
        return " ".join([describe(args[0]), *ranges])
    if origin in (typing.Union, types.UnionType):
        members = sorted(args, key=lambda a: a is type(None))  # None reads best last
        return " or ".join(describe(a) for a in members)
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin is tuple and args and args[-1] is not Ellipsis:
        return "(" + ", ".join(describe(a) for a in args) + ")"
    if origin in _SEQUENCES or hint in _SEQUENCES:
        kind = "tuple" if origin is tuple or hint is tuple else "list"
        return f"{kind} of {describe(args[0])}" if args else kind
    if origin in _MAPPINGS or hint in _MAPPINGS:
        return "dict"
    if origin in _CALLABLES or hint in _CALLABLES:
        return "callable"
    if isinstance(hint, type):
        return _class_name(hint)
    return str(hint)


def _check_plain(value: Any, hint: type) -> tuple[bool, str]:
    if hint is type(None):
        return value is None, ""
    if hint is bool:
        return isinstance(value, bool), ""
    if hint is int:
        return isinstance(value, numbers.Integral) and not isinstance(value, bool), ""
    if hint is float:
        return isinstance(value, numbers.Real) and not isinstance(value, bool), ""
    try:
        return isinstance(value, hint), ""
    except TypeError:  # e.g. a Protocol that is not runtime-checkable
        return True, ""


def _check_items(value: Any, hint: Any, origin: Any, args: tuple) -> tuple[bool, str]:
    if isinstance(value, (str, bytes)) or not isinstance(value, cabc.Sequence):
        return False, ""
    if origin is tuple and args and args[-1] is not Ellipsis:
        if len(value) != len(args):
            return False, f"needs {len(args)} items, got {len(value)}"
        item_hints = list(args)
    else:
        item_hints = [args[0] if args else Any] * len(value)
    for index, (item, item_hint) in enumerate(zip(value, item_hints)):
        ok, detail = _check(item, item_hint)
        if not ok:
            what = detail or f"expected {describe(item_hint)}, got {_short_repr(item)}"
            return False, f"item {index}: {what}"
    return True, ""


def _check_union(value: Any, args: tuple) -> tuple[bool, str]:
    details = []
    for member in args:
        ok, detail = _check(value, member)
        if ok:
            return True, ""
        details.append(detail)
    return False, next((d for d in details if d), "")


def _check_literal(value: Any, args: tuple) -> tuple[bool, str]:
    if any(value == choice and type(value) is type(choice) for choice in args):
        return True, ""
    strings = [a for a in args if isinstance(a, str)]
    if isinstance(value, str) and strings:
        matches = difflib.get_close_matches(value, strings, n=1, cutoff=0.5)
        return False, f"did you mean {matches[0]!r}?" if matches else ""
    return False, ""


def _check(value: Any, hint: Any) -> tuple[bool, str]:
    """Whether ``value`` fits ``hint``, and a detail saying why not (may be empty)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any or isinstance(hint, (str, typing.ForwardRef, typing.TypeVar)):
        return True, ""
    if hint is None:
        return value is None, ""
    if origin is typing.Annotated:
        ok, detail = _check(value, args[0])
        if not ok:
            return ok, detail
        for marker in hint.__metadata__:
            if isinstance(marker, Range) and isinstance(value, numbers.Real):
                problem = marker.violation(value)
                if problem:
                    return False, problem
        return True, ""
    if origin in (typing.Union, types.UnionType):
        return _check_union(value, args)
    if origin is typing.Literal:
        return _check_literal(value, args)
    if origin in _SEQUENCES or hint in _SEQUENCES:
        return _check_items(value, hint, origin or hint, args)
    if origin in _MAPPINGS or hint in _MAPPINGS:
        return isinstance(value, cabc.Mapping), ""
    if origin in _CALLABLES or hint in _CALLABLES:
        return callable(value), ""
    if isinstance(hint, type) and origin is None:
        return _check_plain(value, hint)
    return True, ""  # an annotation we do not understand: let the constructor decide


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def check_value(value: Any, annotation: Any) -> str | None:
    """What is wrong with ``value`` for ``annotation``, or None when it fits.

    Returns:
        e.g. ``"expected int, got 'abc' (str)"``, plus a detail such as the closest choice of a
        ``Literal`` or the violated bound of a ``Range``.
    """
    ok, detail = _check(value, annotation)
    if ok:
        return None
    if not detail and isinstance(value, str) and _is_number(value):
        detail = "a number written as text (YAML reads 1e-4 as text; write 1.0e-4)"
    message = (f"expected {describe(annotation)}, got {_short_repr(value)} "
               f"({type(value).__name__})")
    return f"{message}; {detail}" if detail else message


def _resolve_each(target: Callable[..., Any]) -> dict[str, Any]:
    """Resolve annotations one by one, skipping those that cannot be evaluated."""
    namespace = getattr(inspect.unwrap(target), "__globals__", {})
    hints = {}
    for name, annotation in getattr(target, "__annotations__", {}).items():
        if isinstance(annotation, str):
            try:
                annotation = eval(annotation, dict(namespace))  # noqa: S307 (own source code)
            except Exception:  # noqa: BLE001 (an unreadable hint is no error)
                continue
        hints[name] = annotation
    return hints


@functools.lru_cache(maxsize=1024)
def type_hints(factory: Callable[..., Any]) -> dict[str, Any]:
    """The resolved parameter annotations of a class's ``__init__`` or of a function.

    Never raises: hints that cannot be resolved (a name imported only for type checking, say)
    are left out, so their values go unchecked.
    """
    target = factory.__init__ if inspect.isclass(factory) else factory
    if target is object.__init__ or not callable(target):
        return {}
    try:
        hints = typing.get_type_hints(target, include_extras=True)
    except Exception:  # noqa: BLE001
        try:
            hints = _resolve_each(target)
        except Exception:  # noqa: BLE001
            return {}
    hints.pop("return", None)
    return hints


def check_values(
    factory: Callable[..., Any], kwargs: Mapping[str, Any], where: str, path: str | None = None
) -> None:
    """Raise ConfigError for the first value in ``kwargs`` that does not fit its type hint.

    Args:
        factory: the class or function the values are meant for.
        kwargs: the keyword arguments it is about to be called with.
        where: the component, e.g. ``"model 'RetinaHead'"``.
        path: the component's dotted place in the config (e.g. ``model.bbox_head``), if known.
    """
    try:
        hints = type_hints(factory)
    except TypeError:  # an unhashable factory
        return
    for key, value in kwargs.items():
        if key not in hints:
            continue
        problem = check_value(value, hints[key])
        if problem:
            place = f" ({path}.{key})" if path else ""
            raise ConfigError(f"{where} key '{key}'{place}: {problem}")
