"""The package's layers import only downwards, and no two modules import each other in a ring.

Every ``import`` statement in ``detbox/`` is read from the source (function-local ones too, so a
lazy import cannot hide an upward dependency). Layers, lowest first:

0. ``errors``, ``utils``, ``registry``, ``config``, ``structures`` (and the package's own
   ``__init__``): shared vocabulary, no knowledge of models or data;
1. ``models``, ``data``, ``evaluation``, ``visualization``: the library proper;
2. ``dataset_converters``, ``engine``, ``config_defaults``: dataset conversion, the training
   loop, configs expanded with every constructor default;
3. ``apis``: the Python API gluing the layers below;
4. ``deploy`` (ONNX export, publishing, FLOPs, speed), ``analysis`` (logs, plots, the
   environment report) and ``serve`` (the HTTP service);
5. ``cli``: the ``detbox`` command.

A module may import its own layer or a lower one, and within layer 1, models and data never
import each other (a model knows no dataset, a dataset no model).
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "detbox"

LAYERS = {
    "__init__": 0, "errors": 0, "utils": 0, "registry": 0, "config": 0, "structures": 0,
    "typecheck": 0, "recipes": 0,
    "models": 1, "data": 1, "evaluation": 1, "visualization": 1,
    "dataset_converters": 2, "engine": 2, "config_defaults": 2,
    "apis": 3,
    "deploy": 4, "analysis": 4, "serve": 4,
    "cli": 5,
}
FORBIDDEN_SIDEWAYS = {("models", "data"), ("data", "models")}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """Every detbox module ``name`` imports; ``from pkg import sub`` counts as ``pkg.sub``."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "detbox")
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "detbox":
                continue
            found.add(target)
            found.update(f"{target}.{a.name}" for a in node.names
                         if f"{target}.{a.name}" in known)
    return {t for t in found if t in known}


def _area(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, set(modules)) for name, path in modules.items()}


def test_every_top_level_area_has_a_layer(graph):
    unknown = sorted({_area(m) for m in graph} - set(LAYERS))
    assert not unknown, f"give these areas a layer in tests/test_layering.py: {unknown}"


def test_no_import_goes_to_a_higher_layer(graph):
    violations = []
    for module, targets in graph.items():
        source = _area(module)
        for target in targets:
            dest = _area(target)
            if LAYERS.get(dest, 0) > LAYERS.get(source, 0) or (source, dest) in FORBIDDEN_SIDEWAYS:
                violations.append(f"{module} -> {target}")
    assert not violations, "upward or sideways imports:\n" + "\n".join(sorted(violations))


def test_areas_form_no_import_cycle(graph):
    edges: dict[str, set[str]] = defaultdict(set)
    for module, targets in graph.items():
        edges[_area(module)].update(_area(t) for t in targets if _area(t) != _area(module))
    assert not _cycles(edges), f"import cycles between areas: {_cycles(edges)}"


def test_modules_form_no_import_cycle(graph):
    # A submodule importing its own package's __init__ (to re-use its re-exports) is not a
    # ring in practice, so edges into an ancestor package are left out.
    edges = {m: {t for t in targets if not m.startswith(t + ".")} for m, targets in graph.items()}
    assert not _cycles(edges), f"import cycles between modules: {_cycles(edges)}"


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in edges.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                item = stack.pop()
                on_stack.discard(item)
                component.append(item)
                if item == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in list(edges):
        if node not in index:
            visit(node)
    return found


def test_the_checker_sees_an_upward_import(tmp_path):
    """The walker itself: a lazy upward import inside a function is found."""
    module = tmp_path / "detbox" / "models" / "bad.py"
    module.parent.mkdir(parents=True)
    module.write_text("def f():\n    from detbox.cli.main import main\n    return main\n")
    found = _imports("detbox.models.bad", module, {"detbox.cli.main", "detbox.models.bad"})
    assert found == {"detbox.cli.main"}
