"""docs/customize.md and the FruitDataset example of docs/datasets.md run as written."""

import json
import pickle
import re
import shutil
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image, ImageDraw

from detbox.apis.build import build_detector, fill_num_classes
from detbox.cli.main import main
from detbox.config import load_config
from detbox.data import build_dataset
from detbox.registry import DATASETS, MODELS, TASK_UTILS, TRANSFORMS

DOCS = Path(__file__).resolve().parents[1] / "docs"
EMBEDDED = re.compile(
    r"`(docs/examples/[^`]+)`:\n\n(?:<!-- doc-test: [^\n]*-->\n)?```python\n(.*?)```", re.S)


@pytest.fixture(autouse=True)
def restore_registries():
    """Each example registers its own classes; later tests see detbox's own registries."""
    saved = [(r, dict(r._entries)) for r in (MODELS, TASK_UTILS, DATASETS, TRANSFORMS)]
    yield
    for registry, entries in saved:
        registry._entries.clear()
        registry._entries.update(entries)
    for name in [n for n in sys.modules if n.split(".")[0] == "my_detbox"]:
        del sys.modules[name]


def fruit_pictures(root: Path) -> None:
    """Two training and one validation picture of fruit in the middle format."""
    (root / "images").mkdir(parents=True)
    for split, count in (("train", 2), ("val", 1)):
        records = []
        for i in range(count):
            name = f"{split}_{i}.png"
            image = Image.new("RGB", (96, 80), (30, 30, 30))
            boxes = [[10, 10, 40, 40], [50, 30, 90, 70], [60, 5, 90, 25]]
            draw = ImageDraw.Draw(image)
            for box, color in zip(boxes, [(200, 0, 0), (220, 220, 0), (120, 0, 40)]):
                draw.ellipse(box, fill=color)
            image.save(root / "images" / name)
            records.append({"filename": name, "width": 96, "height": 80,
                            "ann": {"bboxes": boxes, "labels": [0, 1, 2]}})
        (root / f"{split}.json").write_text(json.dumps(records))


@pytest.fixture()
def examples(tmp_path, monkeypatch):
    """A copy of docs/examples with pictures under data/fruit, as the current directory."""
    folder = tmp_path / "examples"
    shutil.copytree(DOCS / "examples", folder)
    fruit_pictures(folder / "data" / "fruit")
    monkeypatch.chdir(folder)
    return folder


def test_the_page_shows_the_example_files_as_they_are():
    page = (DOCS / "customize.md").read_text(encoding="utf-8")
    shown = dict(EMBEDDED.findall(page))
    files = {f"docs/examples/{p.relative_to(DOCS / 'examples').as_posix()}"
             for p in (DOCS / "examples").rglob("*.py") if p.name != "__init__.py"}
    assert set(shown) == files
    for path, text in shown.items():
        assert (DOCS.parent / path).read_text(encoding="utf-8") == text, path


def test_custom_parts_train_one_epoch_on_a_class_subset(examples, capsys):
    options = ["train_cfg.max_epochs=1", "train_dataloader.dataset.pipeline.3.prob=1.0"]
    assert main(["train", "configs/fruit_retinanet.py", "--work-dir", "work",
                 "--cfg-options", *options]) == 0
    classes = json.loads((examples / "work" / "label_map.json").read_text())["classes"]
    assert [(c["name"], c["category_id"]) for c in classes] == [("cherry", 3), ("apple", 1)]
    assert (examples / "work" / "latest.pth").is_file()
    config = json.loads((examples / "work" / "config.json").read_text())
    assert config["model"]["backbone"]["type"] == "TinyConvNet"
    assert config["model"]["bbox_head"]["loss_bbox"]["type"] == "LogCoshLoss"
    assert "bbox_mAP" in capsys.readouterr().out


def test_components_named_by_class_in_a_python_config(examples):
    cfg = load_config("configs/fruit_retinanet_classes.py")
    assert cfg.model.backbone.type.__name__ == "TinyConvNet"
    fill_num_classes(cfg, ["cherry", "apple"], source="test")
    model = build_detector(cfg.model, ["cherry", "apple"], [3, 1]).eval()
    cls_logits, _ = model(torch.zeros(1, 3, 64, 64))
    assert [tuple(t.shape) for t in cls_logits][0] == (1, 9 * 2, 8, 8)
    dataset = build_dataset(cfg.train_dataloader.dataset)
    assert dataset.class_names == ["cherry", "apple"]


def test_the_example_transform_and_loss(examples):
    load_config("configs/fruit_retinanet.py")
    grey = TRANSFORMS.build(dict(type="RandomGrayscale", prob=1.0))
    image = torch.randint(0, 255, (3, 8, 8), dtype=torch.uint8)
    out = grey({"img": image})["img"]
    assert out.dtype == torch.uint8 and bool((out[0] == out[1]).all() and (out[1] == out[2]).all())
    loss = MODELS.build(dict(type="LogCoshLoss", reduction="none"))
    values = loss(torch.tensor([0.0, 1.0, 50.0]), torch.zeros(3))
    expected = torch.log(torch.cosh(torch.tensor([0.0, 1.0]))).tolist() + [50 - 0.6931472]
    assert values.tolist() == pytest.approx(expected, rel=1e-5)


def test_datasets_page_fruit_dataset_example_loads_twice(tmp_path, monkeypatch):
    page = (DOCS / "datasets.md").read_text(encoding="utf-8")
    (block,) = [b for b in re.findall(r"```python\n(.*?)```", page, re.S) if "FruitDataset" in b]
    monkeypatch.chdir(tmp_path)
    fruit_pictures(tmp_path / "data" / "fruit")
    records = json.loads((tmp_path / "data" / "fruit" / "train.json").read_text())
    (tmp_path / "data" / "fruit_train.pkl").write_bytes(pickle.dumps(records))
    for images in ("images/train_0.png", "images/train_1.png"):
        shutil.copy(tmp_path / "data" / "fruit" / images, tmp_path / "data" / "fruit")
    (tmp_path / "fruit_config.py").write_text(block)
    for _ in range(2):  # a second load in one process registers the same class again
        cfg = load_config(tmp_path / "fruit_config.py")
        dataset = build_dataset(cfg.train_dataloader.dataset)
        assert dataset.class_names == ["apple", "banana", "cherry"] and len(dataset) == 2
