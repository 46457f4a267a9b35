"""The built package works on its own: wheel and sdist carry the configs, found by name.

The sdist and the wheel (built from that sdist, as ``python -m build`` does) are made into a
temporary folder, checked with ``twine check``, and the wheel is installed without dependencies
into a fresh virtual environment that sees this interpreter's packages (torch, ...) but not this
checkout. Every command then runs from an empty folder, so nothing can come from the source tree.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from detbox.recipes import recipe_names

REPO_ROOT = Path(__file__).resolve().parents[1]

pytest.importorskip("build", reason="the test extra installs 'build' (pip install -e .[test])")


def _run(args: list[str], cwd: Path, env: dict[str, str] | None = None,
         timeout: float = 300) -> subprocess.CompletedProcess:
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True,
                            timeout=timeout)
    assert result.returncode == 0, (f"{' '.join(map(str, args))} exited {result.returncode}:\n"
                                    f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> dict:
    """Build sdist + wheel, install the wheel into a venv; the venv's paths and a clean env."""
    root = tmp_path_factory.mktemp("package")
    dist = root / "dist"
    _run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(dist), str(REPO_ROOT)],
         cwd=REPO_ROOT)
    venv = root / "venv"
    _run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], cwd=root)
    wheel = next(dist.glob("detbox-*.whl"))
    python = venv / "bin" / "python"
    _run([str(python), "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
          "--disable-pip-version-check", str(wheel)], cwd=root)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env.update(PATH=f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}",
               DETBOX_CACHE=str(root / "cache"), OMP_NUM_THREADS="1")
    empty = root / "empty"
    empty.mkdir()
    return {"dist": dist, "wheel": wheel, "venv": venv, "python": python, "env": env,
            "cwd": empty}


def _detbox(installed: dict, *args: str, timeout: float = 300) -> str:
    return _run([str(installed["venv"] / "bin" / "detbox"), *args], cwd=installed["cwd"],
                env=installed["env"], timeout=timeout).stdout


def test_wheel_and_sdist_carry_every_config(installed):
    names = zipfile.ZipFile(installed["wheel"]).namelist()
    shipped = sorted(n[len("detbox/configs/"):] for n in names
                     if n.startswith("detbox/configs/"))
    in_tree = sorted(p.relative_to(REPO_ROOT / "configs").as_posix()
                     for p in (REPO_ROOT / "configs").rglob("*")
                     if p.is_file() and p.suffix in (".py", ".md", ".yaml", ".yml", ".json")
                     and "__pycache__" not in p.parts)
    assert shipped == in_tree
    sdist = next(installed["dist"].glob("detbox-*.tar.gz"))
    with tarfile.open(sdist) as archive:
        members = {m.split("/", 1)[1] for m in archive.getnames() if "/" in m}
    assert {f"configs/{name}" for name in in_tree} <= members


def test_twine_check_passes(installed):
    pytest.importorskip("twine", reason="the test extra installs 'twine'")
    files = sorted(str(p) for p in installed["dist"].iterdir())
    out = _run([sys.executable, "-m", "twine", "check", "--strict", *files],
               cwd=installed["cwd"]).stdout
    assert out.count("PASSED") == 2, out


def test_installed_package_is_the_wheel_and_finds_its_configs(installed):
    code = ("import importlib.resources as r, detbox; root = r.files('detbox.configs'); "
            "print(detbox.__file__); print(detbox.__version__); "
            "print((root / 'retinanet' / 'retinanet_r50_fpn_1x_coco.py').is_file()); "
            "print(r.files('detbox.serve').joinpath('page.html').is_file())")
    lines = _run([str(installed["python"]), "-c", code], cwd=installed["cwd"],
                 env=installed["env"]).stdout.split()
    assert lines[0].startswith(str(installed["venv"])), lines[0]
    import detbox

    assert lines[1] == detbox.__version__
    assert installed["wheel"].name.startswith(f"detbox-{detbox.__version__}-")
    assert lines[2] == "True"
    assert lines[3] == "True"  # the page of detbox serve


def test_configs_lists_recipes_with_model_dataset_and_schedule(installed):
    out = _detbox(installed, "configs", "retinanet")
    rows = {line.split()[0]: line.split()[1:] for line in out.splitlines()[1:] if line.strip()
            and "/" in line.split()[0]}
    assert rows["retinanet/retinanet_r50_fpn_1x_coco"] == ["RetinaNet", "CocoDataset", "12",
                                                          "epochs"]
    assert set(rows) == {n for n in recipe_names() if "retinanet" in n}
    assert str(installed["venv"]) in out  # the listing says where the recipes are


@pytest.mark.parametrize("name", ["retinanet_r50_fpn_1x_coco", "retinanet_r50_fpn_1x_coco.py",
                                  "retinanet/retinanet_r50_fpn_1x_coco",
                                  "configs/retinanet/retinanet_r50_fpn_1x_coco.py"])
def test_a_recipe_name_resolves_inside_the_installed_package(installed, name):
    path = _detbox(installed, "print-config", name, "--path").strip()
    assert Path(path).is_relative_to(installed["venv"]), path
    cfg = json.loads(_detbox(installed, "print-config", name, "--cfg-options",
                             "train_cfg.max_epochs=3"))
    assert cfg["model"]["type"] == "RetinaNet"
    assert cfg["model"]["backbone"]["depth"] == 50  # from the _base_ piece in the package
    assert cfg["train_cfg"]["max_epochs"] == 3


def test_an_unknown_name_is_one_line_with_close_matches(installed):
    result = subprocess.run(
        [str(installed["venv"] / "bin" / "detbox"), "print-config", "retinanet_r50_fpn_1x_cco"],
        cwd=installed["cwd"], env=installed["env"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "did you mean retinanet_r50_fpn_1x_coco" in lines[0], lines


@pytest.mark.slow
def test_demo_runs_from_an_empty_folder(installed):
    options = ["train_cfg.max_epochs=1", "train_dataloader.num_workers=0",
               "val_dataloader.num_workers=0", "train_dataloader.dataset.num_images=8",
               "val_dataloader.dataset.num_images=4", "train_dataloader.batch_size=4",
               "val_dataloader.batch_size=4", "train_dataloader.dataset.image_size=64",
               "val_dataloader.dataset.image_size=64"]
    out = _detbox(installed, "demo", "--device", "cpu", "--num-vis", "1", "--out", "demo",
                  "--cfg-options", *options, timeout=600)
    assert "detbox demo finished" in out
    demo = installed["cwd"] / "demo"
    assert (demo / "latest.pth").is_file() and (demo / "preds.json").is_file()
    assert "bbox_mAP" in json.loads((demo / "metrics.json").read_text())


def _tiny_coco_2017(root: Path, cache: Path) -> None:
    """``root/data/coco`` with COCO's file names: 4 train and 2 val synthetic 64 px images."""
    from detbox.data.synthetic import generate_synthetic_coco

    coco = root / "data" / "coco"
    (coco / "annotations").mkdir(parents=True)
    for split, count in (("train", 4), ("val", 2)):
        ann_file = generate_synthetic_coco(cache / split, split, count, 64, min_size=12,
                                           max_size=40)
        shutil.copytree(ann_file.parent.parent / split / "images", coco / f"{split}2017")
        data = json.loads(ann_file.read_text())
        for image in data["images"]:
            image["file_name"] = Path(image["file_name"]).name
        (coco / "annotations" / f"instances_{split}2017.json").write_text(json.dumps(data))


@pytest.mark.slow
def test_train_a_coco_recipe_by_name_from_an_empty_folder(installed, tmp_path):
    _tiny_coco_2017(installed["cwd"], tmp_path / "cache")
    options = ["model.init_cfg=None", "model.bbox_head.num_classes=3", "train_cfg.max_epochs=1",
               "train_dataloader.num_workers=0", "val_dataloader.num_workers=0",
               "train_dataloader.dataset.pipeline.2.scale=(64,64)",
               "val_dataloader.dataset.pipeline.1.scale=(64,64)"]
    _detbox(installed, "train", "retinanet_r50_fpn_1x_coco", "--device", "cpu",
            "--cfg-options", *options, timeout=600)
    work = installed["cwd"] / "work_dirs" / "retinanet_r50_fpn_1x_coco"
    assert (work / "latest.pth").is_file()
