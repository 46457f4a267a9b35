"""The doc-test harness itself: which blocks it finds, how it reads annotations and rewrites."""

from pathlib import Path

import pytest

from tests.docs.doc_blocks import all_blocks, parse_page
from tests.docs.workspace import REPO, rewrite_shell

PAGE = """# Title

```bash
detbox env
```

<!-- doc-test: skip (needs 8 GPUs; and a cluster) -->

```sh
tools/dist_train.sh CONFIG 8
```

<!-- doc-test: setup=voc,middle_format; env A=1 -->
<!-- doc-test: sub CONFIG=configs/x.py; given=img1,frame -->
```python
print(1)
```

```text
not run
```

```
not run either
```

1. In a list:

   <!-- doc-test: xfail (fixed separately) -->
   ```console
   detbox demo
   ```
"""


def test_blocks_and_annotations_are_read(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(PAGE)
    blocks = parse_page(page, tmp_path)
    assert [(b.id, b.kind) for b in blocks] == [
        ("page.md:3", "shell"), ("page.md:9", "shell"), ("page.md:15", "python"),
        ("page.md:30", "shell")]
    plain, gpus, python, listed = blocks
    assert plain.skip is None and not plain.setups and plain.code == "detbox env\n"
    assert gpus.skip == "needs 8 GPUs; and a cluster"
    assert python.setups == ["voc", "middle_format"] and python.env == {"A": "1"}
    assert python.subs == {"CONFIG": "configs/x.py"} and python.given == ["img1", "frame"]
    assert listed.xfail == "fixed separately" and listed.code == "detbox demo\n"


def test_unknown_directive_is_an_error(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("<!-- doc-test: skipp (typo) -->\n```bash\ntrue\n```\n")
    with pytest.raises(ValueError, match="page.md:2: unknown doc-test directive 'skipp"):
        parse_page(page, tmp_path)


def test_every_page_is_found():
    pages = {block.page for block in all_blocks(REPO)}
    assert "README.md" in pages
    assert {p.relative_to(REPO).as_posix() for p in (REPO / "docs").glob("*.md")
            if "```bash" in p.read_text() or "```python" in p.read_text()} <= pages


def test_heavy_settings_are_shrunk():
    code = rewrite_shell(
        "pip install -e . && detbox demo\n"
        "detbox train configs/a.py --resume   # comment\n"
        "detbox train configs/b.py --cfg-options \\\n    x=1\n"
        "detbox flops CONFIG --shape 800 1333\n"
        "detbox benchmark CONFIG CKPT --num-images 200\n", {"CKPT": "other.pth"})
    lines = code.splitlines()
    assert lines[0].startswith("true && detbox demo --cfg-options ")
    assert "train_cfg.max_epochs=1" in lines[0]
    assert lines[1].startswith("detbox train configs/a.py --cfg-options train_cfg.max_epochs=1")
    assert lines[1].endswith("--resume   # comment")
    assert lines[2].count("--cfg-options") == 1 and lines[2].endswith("    x=1")
    assert lines[3] == "detbox flops configs/my_retinanet.py --shape 64 64"
    assert lines[4] == "detbox benchmark configs/my_retinanet.py other.pth --num-images 2"


def test_finetune_config_block_is_the_config_file():
    """docs/finetune.md shows the Penn-Fudan config as it is (less its opening comment)."""
    (block,) = [b for b in parse_page(REPO / "docs" / "finetune.md", REPO) if b.write]
    config = REPO / "configs" / "torchvision" / Path(block.write).name
    assert config.read_text().endswith(block.code)
    assert block.code.startswith("_base_ = [")
