"""Finding the runnable examples in the documentation and reading their annotations.

Every fenced block tagged ``bash``, ``sh``, ``console`` or ``python`` in ``README.md`` and
``docs/*.md`` is an example the doc tests run. An HTML comment on the line(s) right before the
fence (blank lines between are allowed) tells the harness how::

    <!-- doc-test: skip (needs 8 GPUs) -->          not run; the reason shows in the summary
    <!-- doc-test: xfail (fixed separately) -->     run, expected to fail
    <!-- doc-test: setup=onnx_model -->             extra inputs made before the run
    <!-- doc-test: env DETBOX_X=1 -->               environment variable for the run
    <!-- doc-test: sub CONFIG=configs/a.py -->      replace a word of the block
    <!-- doc-test: given=img1,frame -->             python: names bound to small RGB images
    <!-- doc-test: write=configs/a.py -->           the block is a file: write it, check it loads
    <!-- doc-test: config -->                       python: a config fragment; it is loaded after
                                                    tiny ``train_pipeline``/``test_pipeline``
                                                    and its datasets are built

Inputs beyond the standard workspace come from the setups in ``tests/docs/setups.py``. A new
page needs nothing: every ``docs/*.md`` is read, and its blocks run unless annotated.

Several directives may share one comment, separated by ``;`` (not inside a reason's brackets).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

RUN_LANGUAGES = {"bash": "shell", "sh": "shell", "console": "shell", "python": "python"}
_FENCE = re.compile(r"^(\s*)```\s*([\w+-]*)\s*$")
_COMMENT = re.compile(r"^\s*<!--\s*doc-test:(.*?)-->\s*$")
_REASON = re.compile(r"^(skip|xfail)\s*\((.+)\)$")


@dataclass
class DocBlock:
    """One fenced example: where it is, what it says and how to run it."""

    page: str  # path relative to the repository root
    line: int  # 1-based line of the opening fence
    kind: str  # "shell" or "python"
    code: str
    skip: str | None = None
    xfail: str | None = None
    setups: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    subs: dict[str, str] = field(default_factory=dict)
    given: list[str] = field(default_factory=list)
    write: str | None = None
    config: bool = False

    @property
    def id(self) -> str:
        return f"{self.page}:{self.line}"


def doc_pages(repo: Path) -> list[Path]:
    """README.md and every page under docs/, in a stable order."""
    return [repo / "README.md", *sorted((repo / "docs").glob("*.md"))]


def parse_directives(block: DocBlock, text: str) -> None:
    """Apply the directives of one ``doc-test:`` comment to ``block``.

    Raises:
        ValueError: an unknown directive, so a typo never silently turns a check off.
    """
    for part in filter(None, (p.strip() for p in re.split(r";(?![^()]*\))", text))):
        reason = _REASON.match(part)
        if reason:
            setattr(block, reason.group(1), reason.group(2).strip())
        elif part.startswith("setup="):
            block.setups += [s.strip() for s in part[len("setup="):].split(",")]
        elif part.startswith("given="):
            block.given += [s.strip() for s in part[len("given="):].split(",")]
        elif part == "config":
            block.config = True
        elif part.startswith("write="):
            block.write = part[len("write="):].strip()
        elif part.startswith(("env ", "sub ")):
            key, _, value = part[4:].strip().partition("=")
            getattr(block, {"env": "env", "sub": "subs"}[part[:3]])[key.strip()] = value.strip()
        else:
            raise ValueError(f"{block.id}: unknown doc-test directive {part!r}")


def parse_page(path: Path, repo: Path) -> list[DocBlock]:
    """The runnable blocks of one Markdown page with their annotations."""
    lines = path.read_text(encoding="utf-8").splitlines()
    page = path.relative_to(repo).as_posix()
    blocks: list[DocBlock] = []
    index = 0
    while index < len(lines):
        fence = _FENCE.match(lines[index])
        if not fence:
            index += 1
            continue
        end = index + 1
        while end < len(lines) and lines[end].strip() != "```":
            end += 1
        kind = RUN_LANGUAGES.get(fence.group(2).lower())
        if kind:
            indent = len(fence.group(1))
            code = "\n".join(line[indent:] for line in lines[index + 1:end]) + "\n"
            block = DocBlock(page, index + 1, kind, code)
            for comment in _comments_before(lines, index):
                parse_directives(block, comment)
            blocks.append(block)
        index = end + 1
    return blocks


def _comments_before(lines: list[str], fence: int) -> list[str]:
    """The ``doc-test:`` comments directly above line ``fence`` (blank lines allowed)."""
    found = []
    index = fence - 1
    while index >= 0:
        if not lines[index].strip():
            index -= 1
            continue
        match = _COMMENT.match(lines[index])
        if not match:
            break
        found.append(match.group(1))
        index -= 1
    return found[::-1]


def all_blocks(repo: Path) -> list[DocBlock]:
    """Every runnable block of every page."""
    return [block for page in doc_pages(repo) for block in parse_page(page, repo)]
