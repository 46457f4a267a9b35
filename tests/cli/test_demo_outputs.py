"""The demo's overview picture and training curves."""

import json
import sys

import numpy as np
import pytest
from PIL import Image

from detbox.cli.demo import write_curves, write_overview
from detbox.data import build_dataset
from tests.tiny_detector import build_tiny, tiny_config


def _fake_log(work_dir):
    records = [{"mode": "train", "epoch": e, "iter": i, "loss": 2.0 / (e * 4 + i)}
               for e in (1, 2) for i in (1, 2, 3, 4)]
    records += [{"mode": "val", "epoch": e, "bbox_mAP": 0.1 * e} for e in (1, 2)]
    (work_dir / "20250101_000000.log.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in records))


def test_overview_puts_predictions_beside_ground_truth(tmp_path, monkeypatch):
    monkeypatch.setenv("DETBOX_CACHE", str(tmp_path / "cache"))
    cfg = tiny_config(with_data=True)
    dataset = build_dataset(cfg.test_dataloader.dataset)
    out = write_overview(build_tiny(cfg), dataset, 3, tmp_path / "demo" / "overview.png")
    picture = np.asarray(Image.open(out).convert("RGB"))
    head = picture.shape[0] - 3 * 384
    assert picture.shape[1] == 2 * 384 and 0 < head < 60  # 3 rows of 384 px tiles + titles
    for column in (0, 1):  # both columns hold a picture in every row
        for row in range(3):
            tile = picture[head + row * 384 + 20: head + row * 384 + 360,
                           column * 384 + 20: column * 384 + 360]
            assert tile.std() > 5


def test_curves_plot_loss_and_ap(tmp_path):
    pytest.importorskip("matplotlib", reason="matplotlib is in the test extras")
    _fake_log(tmp_path)
    out = write_curves(tmp_path, tmp_path / "curves.png")
    assert out == tmp_path / "curves.png"
    width, height = Image.open(out).size
    assert width >= 600 and height >= 500  # two subplots: loss and bbox_mAP


def test_curves_without_matplotlib_say_so(tmp_path, monkeypatch, capsys):
    _fake_log(tmp_path)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    assert write_curves(tmp_path, tmp_path / "curves.png") is None
    assert "matplotlib is not installed" in capsys.readouterr().out
    assert not (tmp_path / "curves.png").exists()
