"""``detbox registry [NAME]``: every registered component with its arguments, or one in full.

``detbox registry --markdown > docs/registry.md`` writes the reference page of detbox's own
components (a test checks that the committed page is what this prints).
"""

from __future__ import annotations

import argparse
import inspect
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from detbox.errors import ConfigError

REGISTRY_TITLES = {"model": "models", "task util": "task utils", "dataset": "datasets",
                   "transform": "transforms"}


@dataclass(frozen=True)
class Argument:
    """One constructor argument as a config sets it."""

    name: str
    hint: str
    default: str | None  # None: required

    def line(self) -> str:
        default = " (required)" if self.default is None else f" = {self.default}"
        return f"{self.name}: {self.hint}{default}"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "registry", help="list registered components (models, task utils, datasets, "
                         "transforms) with their arguments, or show one in full"
    )
    parser.add_argument("name", nargs="?", help="a component name, e.g. RetinaHead")
    parser.add_argument("--config", help="a config whose custom_imports register more "
                                         "components (your own modules)")
    parser.add_argument("--markdown", action="store_true",
                        help="print detbox's own components as Markdown (docs/registry.md)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from detbox.config import load_config

    _load_components()
    if args.config:
        load_config(args.config)
    if args.markdown:
        print(markdown(), end="")
    elif args.name:
        print(describe_component(args.name), end="")
    else:
        print(listing(), end="")
    return 0


def _load_components() -> None:
    import detbox.data  # noqa: F401  (registers datasets and transforms)
    import detbox.models  # noqa: F401  (registers models and task utils)


def _registries() -> list[Any]:
    from detbox.registry import DATASETS, MODELS, TASK_UTILS, TRANSFORMS

    return [MODELS, TASK_UTILS, DATASETS, TRANSFORMS]


def _entries(own_only: bool = False) -> Iterator[tuple[str, str, Callable[..., Any]]]:
    """``(registry title, name, class or function)`` of every registered component."""
    for registry in _registries():
        for name, factory in registry.items():
            if own_only and not factory.__module__.startswith("detbox."):
                continue
            yield REGISTRY_TITLES.get(registry.kind, registry.kind), name, factory


def arguments(factory: Callable[..., Any]) -> list[Argument]:
    """The keyword arguments a config may give ``factory``, with type hints and defaults."""
    from detbox.typecheck import describe, type_hints

    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return []
    hints = type_hints(factory)
    found = []
    for name, param in params.items():
        if param.kind is inspect.Parameter.VAR_KEYWORD:
            found.append(Argument(f"**{name}", "anything", "{}"))
        elif param.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD,
                            inspect.Parameter.KEYWORD_ONLY):
            hint = describe(hints[name]) if name in hints else "anything"
            default = None if param.default is inspect.Parameter.empty else _show(param.default)
            found.append(Argument(name, hint, default))
    return found


def _show(value: Any) -> str:
    """A default as a config would write it (read-only mappings shown as plain dicts)."""
    if isinstance(value, Mapping):
        return "dict(" + ", ".join(f"{k}={_show(v)}" for k, v in value.items()) + ")"
    if isinstance(value, (list, tuple)):
        items = ", ".join(_show(v) for v in value)
        if isinstance(value, list):
            return f"[{items}]"
        return f"({items},)" if len(value) == 1 else f"({items})"
    return repr(value)


def summary(factory: Callable[..., Any]) -> str:
    """The first line of the docstring."""
    doc = inspect.getdoc(factory) or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


def args_section(factory: Callable[..., Any]) -> list[str]:
    """The lines of the docstring's ``Args:`` section (indented as written)."""
    lines = (inspect.getdoc(factory) or "").splitlines()
    if "Args:" not in [line.strip() for line in lines]:
        return []
    start = [line.strip() for line in lines].index("Args:") + 1
    section = []
    for line in lines[start:]:
        if line and not line.startswith(" "):
            break
        section.append(line.rstrip())
    while section and not section[-1]:
        section.pop()
    return section


def listing() -> str:
    """Every registered component: arguments and first docstring line, by registry."""
    out: list[str] = []
    current = None
    for title, name, factory in _entries():
        if title != current:
            out.append(f"{'' if current is None else chr(10)}{title}:")
            current = title
        first = summary(factory)
        out.append(f"  {name}" + (f": {first}" if first else ""))
        out.extend(f"      {arg.line()}" for arg in arguments(factory))
    return "\n".join(out) + "\n"


def _find(name: str) -> tuple[str, Callable[..., Any]]:
    entries = {n: (title, f) for title, n, f in _entries()}
    if name in entries:
        return entries[name]
    from detbox.registry import closest_match

    lowered = {n.lower(): n for n in entries}
    match = lowered.get(name.lower()) or closest_match(name, list(entries))
    hint = f" Did you mean '{match}'?" if match else ""
    raise ConfigError(f"no registered component named '{name}'.{hint} "
                      "Run 'detbox registry' for the list")


def describe_component(name: str) -> str:
    """One component in full: where it lives, all arguments and the docstring's Args section."""
    title, factory = _find(name)
    out = [f"{name} ({title}, {factory.__module__}.{factory.__qualname__})"]
    if summary(factory):
        out.append(f"  {summary(factory)}")
    out.append("")
    out.append("Arguments:")
    out.extend(f"  {arg.line()}" for arg in arguments(factory))
    section = args_section(factory)
    if section:
        out.extend(["", "Args:", *section])
    return "\n".join(out) + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def markdown() -> str:
    """The reference page of detbox's own components (``docs/registry.md``)."""
    out = [
        "# Registered components",
        "",
        "Every component a config can name with `type=`, by registry. Generated by",
        "`detbox registry --markdown > docs/registry.md`; `detbox registry NAME` shows one",
        "component with its docstring. Components from your own modules (`custom_imports`,",
        "see [customize.md](customize.md)) appear in `detbox registry --config my_config.py`.",
    ]
    current = None
    for title, name, factory in _entries(own_only=True):
        if title != current:
            out.extend(["", f"## {title[0].upper()}{title[1:]}"])
            current = title
        out.extend(["", f"### {name}", ""])
        if summary(factory):
            out.extend([summary(factory), ""])
        out.append(f"`{factory.__module__}.{factory.__qualname__}`")
        args = arguments(factory)
        if args:
            out.extend(["", "| argument | type | default |", "|---|---|---|"])
            out.extend(
                f"| `{a.name}` | {_cell(a.hint)} | "
                f"{'required' if a.default is None else '`' + _cell(a.default) + '`'} |"
                for a in args
            )
    return "\n".join(out) + "\n"
