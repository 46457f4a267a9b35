"""Every shell command and Python example in README.md and docs/*.md runs, so none can rot.

One test per fenced block (id ``page:line``). How a block is run and how to annotate one is
described in ``tests/docs/doc_blocks.py`` and ``tests/docs/workspace.py``; a new page under
``docs/`` is picked up without changing this file. A block that fails is a failure naming its
page and line: make it runnable, or annotate it with the reason it cannot run here.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from tests.docs.doc_blocks import DocBlock, all_blocks
from tests.docs.setups import SETUPS
from tests.docs.workspace import (
    REPO,
    TINY_PIPELINES,
    build_workspace,
    copy_workspace,
    rewrite_shell,
    run,
    shell_env,
    write_shim,
)

BLOCKS = all_blocks(REPO)
RUNNER = Path(__file__).with_name("run_snippet.py")
LOAD_CONFIG = (
    "import sys\n"
    "from detbox.config import load_config\n"
    "from detbox.data import build_dataset\n"
    "cfg = load_config(sys.argv[1])\n"
    "for key in ('train_dataloader', 'val_dataloader'):\n"
    "    if key in cfg:\n"
    "        print(key, len(build_dataset(cfg[key]['dataset'])), 'images')\n"
)


@pytest.fixture(scope="session")
def doc_workspace(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    root = tmp_path_factory.mktemp("doc_workspace")
    write_shim(root / "bin")
    env = shell_env(root / "base", root / "bin")
    build_workspace(root / "base", env)
    return root / "base", env


def run_block(block: DocBlock, cwd: Path, env: dict[str, str]) -> None:
    """Run one block in ``cwd``; raise with its output when it fails."""
    env = {**env, **block.env}
    for name in block.setups:
        if name not in SETUPS:
            raise KeyError(f"{block.id}: unknown setup {name!r}; known: {sorted(SETUPS)}")
        SETUPS[name](cwd, env)
    code = block.code
    if block.kind == "python":
        for word, value in block.subs.items():
            code = re.sub(rf"(?<![\w/.-]){re.escape(word)}(?![\w/.-])", value, code)
    if block.write or block.config:
        target = cwd / (block.write or "doc_config.py")
        target.unlink(missing_ok=True)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(code if block.write else TINY_PIPELINES + code)
        run([sys.executable, "-c", LOAD_CONFIG, str(target.relative_to(cwd))], cwd, env)
    elif block.kind == "python":
        (cwd / "doc_example.py").write_text(code)
        run([sys.executable, str(RUNNER), "doc_example.py", *block.given], cwd, env)
    else:
        (cwd / "doc_example.sh").write_text("set -eo pipefail\n" + rewrite_shell(block.code,
                                                                              block.subs))
        run(["bash", "doc_example.sh"], cwd, env)


@pytest.mark.parametrize("block", BLOCKS, ids=[block.id for block in BLOCKS])
def test_doc_example(block: DocBlock, request, tmp_path):
    if block.skip:
        pytest.skip(f"{block.id}: {block.skip}")
    base, env = request.getfixturevalue("doc_workspace")
    cwd = tmp_path / "project"
    copy_workspace(base, cwd)
    try:
        run_block(block, cwd, env)
    except RuntimeError as error:
        if block.xfail:
            pytest.xfail(f"{block.id}: {block.xfail}")
        raise AssertionError(f"doc example {block.id} failed; make it runnable or annotate it "
                             f"(see tests/docs/doc_blocks.py)\n{error}") from None
    if block.xfail:
        pytest.fail(f"{block.id} is marked xfail ({block.xfail}) but passes: remove the mark")
