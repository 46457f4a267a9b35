"""Faster / Mask R-CNN on HRNetV2p + HRFPN: losses, training, prediction, the recipes, the
synthetic recipe end to end, FLOPs and ONNX export."""

from __future__ import annotations

import json

import pytest
import torch

from detbox.apis.build import fill_num_classes
from detbox.cli.main import main
from detbox.config import load_config
from detbox.models.pretrained import cache_path
from detbox.registry import MODELS
from detbox.structures import DetSample, ImageBatch
from tests.conftest import REPO_ROOT
from tests.models._hrnet_layout import official_layout
from tests.tiny_detector import build_tiny, tiny_config, two_stage_model, write_tiny

from ._tiny import build, rectangles_batch, tiny_two_stage_cfg, train_steps

CONFIGS = REPO_ROOT / "configs/hrnet"
SLIM_HRNET = {"type": "HRNet", "width": 8, "num_modules": (1, 1, 1), "num_blocks": (1, 1, 1, 1),
              "norm_eval": False}
COCO_RECIPES = {
    "faster_rcnn_hrnetv2p_w18_1x_coco.py": ("FasterRCNN", 18),
    "faster_rcnn_hrnetv2p_w32_1x_coco.py": ("FasterRCNN", 32),
    "faster_rcnn_hrnetv2p_w40_1x_coco.py": ("FasterRCNN", 40),
    "mask_rcnn_hrnetv2p_w32_1x_coco.py": ("MaskRCNN", 32),
}
TINY_TRAIN = [
    "train_dataloader.dataset.num_images=4", "train_dataloader.dataset.image_size=64",
    "train_dataloader.batch_size=2", "train_dataloader.num_workers=0",
    "val_dataloader.dataset.num_images=2", "val_dataloader.dataset.image_size=64",
    "val_dataloader.num_workers=0", "train_cfg.val_interval=1", "train_cfg.max_epochs=1",
    "log.interval=1", "lr_schedule.warmup_iters=1",
]


def hrnet_cfg(kind: str = "faster") -> dict:
    """The tiny two-stage detector of ``_tiny`` on a slim HRNet + HRFPN (in_channels read from
    the backbone)."""
    cfg = tiny_two_stage_cfg(kind)
    cfg["backbone"] = dict(SLIM_HRNET)
    cfg["neck"] = {"type": "HRFPN", "out_channels": 16}
    return cfg


def test_neck_reads_the_backbone_channels():
    model = build(hrnet_cfg())
    assert model.neck.in_channels == [8, 16, 32, 64]
    feats = model.eval().extract_feat(torch.zeros(1, 3, 64, 64))
    assert [tuple(f.shape[1:]) for f in feats] == [(16, 64 // s, 64 // s) for s in
                                                    (4, 8, 16, 32, 64)]


@pytest.mark.parametrize("kind", ["faster", "mask"])
def test_losses_with_empty_and_one_gt(kind):
    model = build(hrnet_cfg(kind)).train()
    empty = model.loss(rectangles_batch(with_gt=False))
    assert all(torch.isfinite(v) for v in empty.values())
    assert empty["loss_rpn_bbox"] == 0 and empty["loss_bbox"] == 0 and empty["loss_cls"] > 0
    if kind == "mask":
        assert empty["loss_mask"] == 0
    one = model.loss(rectangles_batch())
    assert all(torch.isfinite(v) for v in one.values())
    assert one["loss_rpn_bbox"] > 0 and one["loss_bbox"] > 0
    sum(one.values()).backward()
    assert model.backbone.conv1.weight.grad.abs().sum() > 0  # through HRFPN into the stem


def test_trains_a_few_steps_and_predicts_on_an_empty_image():
    model = build(hrnet_cfg())
    history = train_steps(model, rectangles_batch(), steps=6)
    assert sum(history[-1].values()) < sum(history[0].values())
    sample = DetSample(image_id=0, file_name="", ori_shape=(64, 64), img_shape=(64, 64))
    with torch.no_grad():
        (result,) = model.eval().predict(
            ImageBatch(images=torch.zeros(1, 3, 64, 64), samples=[sample]))
    assert result.boxes.shape[1] == 4 and len(result) <= 100
    assert len(result.scores) == len(result.labels) == len(result)


@pytest.mark.parametrize("name", sorted(COCO_RECIPES))
def test_coco_recipes_build(name, monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(torch.hub, "download_url_to_file",
                        lambda *a, **k: pytest.fail("building must not download"))
    detector, width = COCO_RECIPES[name]
    cfg = load_config(CONFIGS / name)
    fill_num_classes(cfg, [f"class{i}" for i in range(80)], source="test")
    model = MODELS.build(cfg["model"])
    assert type(model).__name__ == detector and model.num_classes == 80
    assert model.backbone.width == width and model.backbone.norm == "BN"
    assert model.backbone.norm_eval and model.backbone.frozen_stages == -1
    assert model.neck.in_channels == [width, 2 * width, 4 * width, 8 * width]
    assert (model.neck.out_channels, model.neck.num_outs, model.neck.pooling) == (256, 5, "avg")
    checkpoint = model.init_cfg["backbone_checkpoint"]
    assert checkpoint.endswith(f"/hrnetv2_w{width}-" + checkpoint.rsplit("-", 1)[1])
    assert cfg["auto_scale_lr"] == {"base_batch_size": 16, "enable": False}


def test_recipe_loads_the_official_weights_from_the_hub_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    cfg = load_config(CONFIGS / "faster_rcnn_hrnetv2p_w18_1x_coco.py")
    fill_num_classes(cfg, ["a", "b"], source="test")
    model = MODELS.build(cfg["model"])
    generator = torch.Generator().manual_seed(0)
    weights = {k: torch.randn(shape, generator=generator) if shape else torch.tensor(3)
               for k, shape in official_layout(18).items()}
    cached = cache_path(model.init_cfg["backbone_checkpoint"])
    cached.parent.mkdir(parents=True)
    torch.save(weights, cached)
    assert "hrnetv2_w18" in model.init_weights()
    key = "stage4.2.fuse_layers.0.3.0.weight"
    assert torch.equal(model.backbone.state_dict()[key], weights[key])


def test_the_synthetic_recipe_trains_end_to_end(tmp_path, monkeypatch):
    monkeypatch.setenv("DETBOX_CACHE", str(tmp_path / "cache"))
    work = tmp_path / "run"
    recipe = CONFIGS / "faster_rcnn_hrnetv2p_w18_small_synthetic.py"
    assert main(["train", str(recipe), "--work-dir", str(work), "--cfg-options",
                 *TINY_TRAIN]) == 0
    (log,) = work.glob("*.log.jsonl")
    records = [json.loads(line) for line in log.read_text().splitlines()]
    train = [r for r in records if r.get("mode") == "train"]
    assert len(train) == 2  # 4 images, batch 2, one epoch
    assert all(torch.isfinite(torch.tensor(r["loss"])) and r["loss_bbox"] > 0 for r in train)
    assert (work / "epoch_1.pth").is_file()


def test_flops_counts_backbone_and_neck(tmp_path, capsys):
    model_cfg = two_stage_model("FasterRCNN")
    model_cfg["backbone"] = dict(SLIM_HRNET)
    model_cfg["neck"] = {"type": "HRFPN", "out_channels": 16}
    config, checkpoint = write_tiny(tmp_path, model_cfg, name="model")
    report = tmp_path / "flops.json"
    assert main(["flops", str(config), "--checkpoint", str(checkpoint), "--shape", "64",
                 "--json-out", str(report)]) == 0
    counted = json.loads(report.read_text())
    rows = {m["name"]: m for m in counted["modules"]}
    assert rows["backbone"]["type_name"] == "HRNet" and rows["neck"]["type_name"] == "HRFPN"
    assert 0 < rows["backbone"]["flops"] < counted["total_flops"]
    assert rows["neck"]["flops"] > 0
    assert "HRNet" in capsys.readouterr().out


def test_onnx_export_matches_pytorch(tmp_path):
    pytest.importorskip("onnxruntime")
    from detbox.deploy.onnx_export import export_onnx, verification_images, verify_onnx

    model_cfg = two_stage_model("FasterRCNN")
    model_cfg["backbone"] = dict(SLIM_HRNET)
    model_cfg["neck"] = {"type": "HRFPN", "out_channels": 16}
    model = build_tiny(tiny_config(model_cfg))
    path = export_onnx(model, tmp_path / "model.onnx", shape=(64, 64))
    reports = verify_onnx(model, path, verification_images((90, 120)))
    for report in reports[:-1]:
        assert report.ok, report.problems
        assert report.num_torch == report.num_onnx > 10
        assert report.max_box_diff < 1e-2 and report.max_score_diff < 1e-4
    blank = reports[-1]
    assert blank.ok and blank.num_torch == blank.num_onnx == 0
