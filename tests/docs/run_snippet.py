"""Run one Python example from the docs: ``python run_snippet.py FILE [NAME ...]``.

Each ``NAME`` is bound to a small RGB uint8 image before the example runs (for examples that
use ``img1`` or ``frame`` without saying where they come from). A top-level ``await`` works,
as in an asyncio REPL: the example then runs in ``asyncio.run``.
"""

import ast
import asyncio
import inspect
import sys

import numpy as np


def main(path: str, names: list[str]) -> None:
    source = open(path, encoding="utf-8").read()
    code = compile(source, path, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    rng = np.random.default_rng(0)
    namespace = {"__name__": "__main__"}
    namespace.update({name: rng.integers(0, 256, (64, 64, 3), dtype=np.uint8) for name in names})
    result = eval(code, namespace)  # noqa: S307 - the docs' own example
    if inspect.iscoroutine(result):
        asyncio.run(result)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
