"""The package's layers import downwards only: read from each module's source (AST), so an
import inside a function counts as much as one at the top."""

import ast
from pathlib import Path

import pytest

import detbox

PACKAGE = Path(detbox.__file__).parent

# A layer never imports the layers above it.
FORBIDDEN = {
    "tools": ("detbox.cli",),
    "models": ("detbox.engine", "detbox.apis", "detbox.cli", "detbox.tools"),
    "data": ("detbox.engine", "detbox.apis", "detbox.cli", "detbox.tools"),
    "structures": ("detbox.engine", "detbox.apis", "detbox.cli", "detbox.tools"),
    "evaluation": ("detbox.engine", "detbox.apis", "detbox.cli", "detbox.tools"),
}


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """``(line, module)`` for every absolute import in a source file."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found += [(node.lineno, node.module)]
            found += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
    return found


def _is_under(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_layer_imports_no_higher_layer(layer):
    files = sorted((PACKAGE / layer).rglob("*.py"))
    assert files, f"detbox/{layer} has no modules"
    upward = [
        f"{path.relative_to(PACKAGE.parent)}:{line} imports {module}"
        for path in files
        for line, module in imported_modules(path)
        if any(_is_under(module, above) for above in FORBIDDEN[layer])
    ]
    assert not upward, "\n".join(upward)


def test_the_check_sees_imports_inside_functions(tmp_path):
    source = tmp_path / "m.py"
    source.write_text("def f():\n    from detbox.cli.infer import list_inputs\n"
                      "import detbox.cli\nfrom detbox import cli\n")
    lines = sorted(line for line, module in imported_modules(source)
                   if _is_under(module, "detbox.cli"))
    assert lines == [2, 2, 3, 4]
