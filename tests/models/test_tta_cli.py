"""``--tta`` on ``detbox test`` and ``detbox infer``, and the ``tta`` config section."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from detbox.apis.build import build_detector, fill_num_classes
from detbox.apis.inference import inference_detector, init_detector
from detbox.apis.tta import TTADetector
from detbox.cli.main import main
from detbox.config import load_config
from detbox.data import build_dataset
from detbox.engine.checkpoint import save_checkpoint

REPO_ROOT = Path(__file__).resolve().parents[2]
DEMO = str(REPO_ROOT / "configs/demo/retinanet_r18_fpn_synthetic.py")
OPTIONS = [
    "val_dataloader.dataset.num_images=3", "val_dataloader.dataset.image_size=64",
    "val_dataloader.num_workers=0", "val_dataloader.batch_size=2",
    "model.bbox_head.score_thr=0.0", "model.bbox_head.max_per_img=20",
]
MULTI_SCALE = "tta=dict(scales=[(48, 48), (96, 96)], flip=True, max_per_img=20)"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """An untrained demo RetinaNet saved as a detbox checkpoint, and the synthetic image dir."""
    root = tmp_path_factory.mktemp("tta_cli")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DETBOX_CACHE", str(root / "cache"))
        cfg = load_config(DEMO)
        cfg.val_dataloader.dataset.num_images = 3
        cfg.val_dataloader.dataset.image_size = 64
        dataset = build_dataset(cfg.val_dataloader.dataset)
        fill_num_classes(cfg, list(dataset.class_names), "synthetic")
        torch.manual_seed(0)
        model = build_detector(cfg.model, dataset.class_names, dataset.cat_ids)
    path = save_checkpoint(root / "model.pth", model=model, meta=model.dataset_meta)
    return path, Path(dataset.get_record(0)["img_path"]).parent


@pytest.fixture(autouse=True)
def synthetic_cache(checkpoint, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DETBOX_CACHE", str(checkpoint[0].parent / "cache"))


def _test(checkpoint: Path, out: Path, *extra: str, options: tuple[str, ...] = ()) -> list:
    assert main(["test", DEMO, str(checkpoint), "--out", str(out), "--format-only", *extra,
                 "--cfg-options", *OPTIONS, *options]) == 0
    return json.loads(out.read_text())


def test_test_command_with_tta_flag_and_config_section(checkpoint, tmp_path, capsys) -> None:
    path, _ = checkpoint
    plain = _test(path, tmp_path / "plain.json")
    flipped = _test(path, tmp_path / "flip.json", "--tta")
    assert "test-time augmentation: the test scale x horizontal flip" in capsys.readouterr().out
    multi = _test(path, tmp_path / "multi.json", options=(MULTI_SCALE,))
    assert "2 scales" in capsys.readouterr().out
    for results in (plain, flipped, multi):
        assert results and {r["image_id"] for r in results} == {1, 2, 3}
        assert all(0 <= v <= 64 + 1e-3 for r in results for v in r["bbox"][:2])
    assert flipped != plain and multi != plain and multi != flipped
    assert max(r["bbox"][0] + r["bbox"][2] for r in multi) <= 64 + 1e-3  # original coordinates


def test_infer_command_and_api_with_tta(checkpoint, tmp_path) -> None:
    path, image_dir = checkpoint
    image = sorted(image_dir.iterdir())[0]
    preds = {}
    for name, extra in (("plain", []), ("tta", ["--tta"])):
        out = tmp_path / f"{name}.json"
        assert main(["infer", DEMO, str(path), str(image), "--out", str(out), "--score-thr",
                     "0.0", *extra, "--cfg-options", *OPTIONS]) == 0
        preds[name] = next(iter(json.loads(out.read_text()).values()))["predictions"]
    assert preds["plain"] and preds["tta"] and preds["plain"] != preds["tta"]

    cfg = load_config(DEMO)
    cfg.model.bbox_head.score_thr, cfg.model.bbox_head.max_per_img = 0.0, 20
    cfg["tta"] = {"scales": [(48, 48), (96, 96)], "max_per_img": 20}
    model = init_detector(cfg, path, device="cpu")
    assert isinstance(model, TTADetector) and model.num_views == 4
    assert all(step["type"] != "Resize" for step in model.cfg["test_pipeline"])
    result = inference_detector(model, str(image))
    assert 0 < len(result) <= 20 and result.boxes.max() <= 64 + 1e-3
    assert not isinstance(init_detector(cfg, path, device="cpu", tta=False), TTADetector)
