"""The folder a documentation example runs in, and how a block is turned into a quick run.

The docs are written for a user's project folder: ``configs/my_retinanet.py``, COCO files under
``annotations/`` and ``images/`` (also as ``data/my_dataset``, ``data/mcu`` and, with COCO's
file names, ``data/coco``), a trained ``work_dirs/my_retinanet/latest.pth``, ``model.pth``,
``image.jpg``, ``street.mp4`` ... :func:`build_workspace` makes such a folder once per test
session, on tiny generated data (64 px images, a few of them) with a small RetinaNet trained for
one epoch. Every block then runs in its own copy (folders copied, files linked), so a block that
writes files never changes what another block sees.

Heavy settings are shrunk here, by rewriting the command, never by switches in the product:
``detbox train`` trains one epoch without loader workers, ``detbox demo`` trains on a few tiny
synthetic images, ``--shape H W`` becomes 64 x 64, ``--num-images N`` becomes 2, and
``pip install`` is a no-op (the checkout is already importable through ``PYTHONPATH``).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
SIZE = 64

# Words the docs use for "your file" in commands.
PLACEHOLDERS = {
    "CONFIG": "configs/my_retinanet.py", "CKPT": "model.pth", "CHECKPOINT": "model.pth",
    "WORK_DIR": "work_dirs/my_retinanet",
}
TRAIN_OPTIONS = ["train_cfg.max_epochs=1", "train_dataloader.num_workers=0",
                 "val_dataloader.num_workers=0"]
DEMO_OPTIONS = [
    "train_dataloader.dataset.num_images=8", "train_dataloader.dataset.image_size=64",
    "train_dataloader.batch_size=4", "train_dataloader.num_workers=0",
    "val_dataloader.dataset.num_images=4", "val_dataloader.dataset.image_size=64",
    "val_dataloader.num_workers=0", "train_cfg.max_epochs=1", "train_cfg.val_interval=1",
    "log.interval=1",
]

TINY_PIPELINES = f'''# Tiny pipelines for config fragments of the docs.
train_pipeline = [dict(type="LoadImage"), dict(type="LoadAnnotations"),
                  dict(type="Resize", scale=({SIZE}, {SIZE}), keep_ratio=True),
                  dict(type="PackDetInputs")]
test_pipeline = train_pipeline
'''

TINY_CONFIG = f'''# A small RetinaNet on the tiny COCO files of the doc tests.
_base_ = [
    "_base_/models/retinanet_r50_fpn.py",
    "_base_/datasets/coco_detection.py",
    "_base_/schedules/schedule_adamw_cosine_6e.py",
    "_base_/default_runtime.py",
]
data_root = "data/my_dataset/"
_pipe = [dict(type="LoadImage"), dict(type="LoadAnnotations"),
         dict(type="Resize", scale=({SIZE}, {SIZE}), keep_ratio=True),
         dict(type="Normalize", mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375]),
         dict(type="PackDetInputs")]
model = dict(
    backbone=dict(depth=18, frozen_stages=-1, norm="BN", norm_eval=False),
    neck=dict(out_channels=32, num_outs=4),
    bbox_head=dict(in_channels=32, feat_channels=32, stacked_convs=1,
                   anchor_generator=dict(type="AnchorGenerator", strides=[8, 16, 32, 64],
                                         octave_base_scale=2)),
)
train_dataloader = dict(batch_size=2, num_workers=0, dataset=dict(
    ann_file=data_root + "annotations/instances_train.json", img_dir=data_root + "images/",
    pipeline=_pipe))
val_dataloader = dict(batch_size=2, num_workers=0, dataset=dict(
    ann_file=data_root + "annotations/instances_val.json", img_dir=data_root + "images/",
    pipeline=_pipe))
train_cfg = dict(max_epochs=1, val_interval=1)
lr_schedule = dict(warmup_iters=2)
log = dict(interval=1)
auto_scale_lr = dict(base_batch_size=16, enable=False)  # as the COCO recipes declare
'''


def shell_env(base: Path, bin_dir: Path) -> dict[str, str]:
    """Environment for a block: ``detbox`` on PATH runs this checkout; a shared data cache."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["PATH"] = os.pathsep.join([str(bin_dir), env["PATH"]])
    env["DETBOX_CACHE"] = str(base.parent / "cache")
    env["MPLBACKEND"] = "Agg"
    env["OMP_NUM_THREADS"] = "1"
    return env


def write_shim(bin_dir: Path) -> None:
    """A ``detbox`` executable that runs ``python -m detbox.cli.main`` of this checkout."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    shim = bin_dir / "detbox"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m detbox.cli.main "$@"\n')
    shim.chmod(0o755)


def run(cmd: list[str], cwd: Path, env: dict[str, str], timeout: float = 300) -> str:
    """Run ``cmd``; raise with its output when it fails."""
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    output = proc.stdout + proc.stderr
    if proc.returncode != 0:
        raise RuntimeError(f"exit code {proc.returncode} from {cmd}:\n{output[-6000:]}")
    return output


def _tiny_coco(root: Path, cache: Path) -> None:
    """``root/annotations/instances_{train,val}.json`` and one ``root/images/`` folder."""
    from detbox.data.synthetic import generate_synthetic_coco

    (root / "annotations").mkdir(parents=True)
    (root / "images").mkdir()
    for split, count in (("train", 6), ("val", 4)):
        ann_file = generate_synthetic_coco(cache, split, count, SIZE, min_size=12, max_size=40)
        coco = json.loads(ann_file.read_text())
        for image in coco["images"]:
            name = f"{split}_{Path(image['file_name']).name}"
            shutil.copy(cache / split / "images" / Path(image["file_name"]).name,
                        root / "images" / name)
            image["file_name"] = name
        (root / "annotations" / f"instances_{split}.json").write_text(json.dumps(coco))


def _coco_layout(tiny: Path, coco: Path) -> None:
    """``data/coco`` as the COCO recipes expect it (``instances_train2017.json``, ...)."""
    (coco / "annotations").mkdir(parents=True)
    for split in ("train", "val"):
        (coco / "annotations" / f"instances_{split}2017.json").symlink_to(
            tiny / "annotations" / f"instances_{split}.json")
        (coco / f"{split}2017").symlink_to(tiny / "images")


def _pictures(base: Path) -> None:
    """``image.jpg`` and friends, a ``photos/`` tree and a 4-frame ``street.mp4``."""
    import av

    first = sorted((base / "images").iterdir())[0]
    picture = Image.open(first).convert("RGB")
    for name in ("image.jpg", "demo.jpg", "a.jpg", "b.jpg", "c.jpg", "photos/trip/1.jpg"):
        (base / name).parent.mkdir(parents=True, exist_ok=True)
        picture.save(base / name)
    with av.open(str(base / "street.mp4"), "w") as video:
        stream = video.add_stream("mpeg4", rate=5)
        stream.width, stream.height, stream.pix_fmt = SIZE, SIZE, "yuv420p"
        for _ in range(4):
            frame = av.VideoFrame.from_ndarray(np.asarray(picture), format="rgb24")
            video.mux(stream.encode(frame))
        video.mux(stream.encode())


def build_workspace(base: Path, env: dict[str, str]) -> None:
    """Make the user's project folder the docs assume (see the module docstring)."""
    base.mkdir(parents=True)
    _tiny_coco(base / "data" / "my_dataset", base.parent / "cache" / "tiny")
    for name in ("annotations", "images"):
        (base / name).symlink_to(base / "data" / "my_dataset" / name)
    (base / "data" / "mcu").symlink_to(base / "data" / "my_dataset")
    _coco_layout(base / "data" / "my_dataset", base / "data" / "coco")
    (base / "docs").symlink_to(REPO / "docs")  # docs/examples, run from their own folder
    (base / "configs").mkdir()
    for entry in (REPO / "configs").iterdir():
        (base / "configs" / entry.name).symlink_to(entry)
    (base / "configs" / "my_retinanet.py").write_text(TINY_CONFIG)
    run(["detbox", "train", "configs/my_retinanet.py"], base, env)
    work = base / "work_dirs" / "my_retinanet"
    for name in ("model.pth", "other.pth", "model-1a2b3c4d.pth"):
        (base / name).symlink_to(work / "latest.pth")
    (log,) = work.glob("*.log.jsonl")
    for run_dir in ("a", "b"):
        (base / "work_dirs" / run_dir).mkdir()
        (base / "work_dirs" / run_dir / "20250101_120000.log.jsonl").symlink_to(log)
    _pictures(base)


def copy_workspace(base: Path, dst: Path) -> None:
    """Folders copied, files (and links) linked: a block's writes stay in its own copy."""
    shutil.copytree(base, dst, symlinks=True, copy_function=os.symlink)


def rewrite_shell(code: str, subs: dict[str, str]) -> str:
    """Shrink the heavy settings of a shell block (see the module docstring)."""
    code = re.sub(r"(python -m )?pip install [^&|;\n]*", "true ", code)
    code = re.sub(r"--shape \d+ \d+", f"--shape {SIZE} {SIZE}", code)
    code = re.sub(r"--num-images \d+", "--num-images 2", code)
    code = re.sub(r"\bdetbox demo\b", "detbox demo " + _options(DEMO_OPTIONS), code)
    code = "\n".join(_rewrite_train(line) for line in _logical_lines(code))
    for word, value in {**PLACEHOLDERS, **subs}.items():
        code = re.sub(rf"(?<![\w/.-]){re.escape(word)}(?![\w/.-])", value, code)
    return code + "\n"


def _options(options: list[str]) -> str:
    return "--cfg-options " + " ".join(options)


def _logical_lines(code: str) -> list[str]:
    """Lines with backslash continuations joined, so one command is one line."""
    return code.replace("\\\n", " ").splitlines()


def _rewrite_train(line: str) -> str:
    match = re.search(r"\bdetbox train (\S+)", line)
    if not match:
        return line
    if "--cfg-options" in line:
        return line.replace("--cfg-options", _options(TRAIN_OPTIONS), 1)
    return line[:match.end()] + " " + _options(TRAIN_OPTIONS) + line[match.end():]
