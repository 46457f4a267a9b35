"""TimmBackbone: timm feature levels, freezing, strict weight files, the missing-timm error, and
detectors whose FPN reads its in_channels from it."""

from __future__ import annotations

import sys

import pytest
import torch

from detbox.errors import CheckpointError, ConfigError
from detbox.models.backbones import TimmBackbone
from detbox.registry import MODELS
from tests.models._helpers import tiny_retinanet_cfg
from tests.models.two_stage._tiny import build, rectangles_batch, tiny_two_stage_cfg, train_steps

timm = pytest.importorskip("timm", reason='timm is optional: pip install "detbox[timm]"')


@pytest.mark.parametrize(("name", "out_indices", "channels"), [
    ("convnext_atto", (1, 2, 3), [80, 160, 320]),  # four levels, strides 4..32
    ("resnet18", (2, 3, 4), [128, 256, 512]),  # five levels, a stride-2 stem level first
    ("mobilenetv3_small_050", (2, 3, 4), [16, 24, 288]),
])
def test_levels_channels_and_strides(name, out_indices, channels):
    backbone = TimmBackbone(model_name=name, out_indices=out_indices)
    assert backbone.out_channels == channels
    assert backbone.out_strides == [8, 16, 32]
    feats = backbone(torch.randn(2, 3, 64, 64))
    assert [tuple(f.shape) for f in feats] == [(2, c, 64 // s, 64 // s)
                                               for c, s in zip(channels, [8, 16, 32])]


def test_frozen_stages_and_norm_eval():
    backbone = TimmBackbone(model_name="resnet18", out_indices=(2, 3, 4), frozen_stages=2,
                            norm_eval=True)
    model = backbone.model
    # Level 2 is layer2 (stride 8): the stem and layer1 run before it.
    for module in (model.conv1, model.bn1, model.layer1):
        assert all(not p.requires_grad for p in module.parameters())
    for module in (model.layer2, model.layer3):
        assert all(p.requires_grad for p in module.parameters())
    backbone.train()
    assert not model.conv1.training and not model.layer1[0].conv1.training
    assert model.layer2[0].conv1.training
    assert not model.layer2[0].bn1.training  # norm_eval: every BN keeps its statistics
    assert backbone.frozen_parts()  # random weights with frozen parts: the detector warns


def test_frozen_stages_of_a_flattened_feature_wrapper():
    # timm renames ConvNeXt's 'stages.1' to 'stages_1' in its feature wrapper.
    backbone = TimmBackbone(model_name="convnext_atto", frozen_stages=1)
    model = backbone.model
    frozen = [name for name, p in model.named_parameters() if not p.requires_grad]
    assert frozen and all(name.startswith(("stem", "stages_0.")) for name in frozen)
    assert all(p.requires_grad for p in model.stages_1.parameters())
    assert len(frozen) == len(list(model.stem_0.parameters())) + len(list(
        model.stem_1.parameters())) + len(list(model.stages_0.parameters()))


def test_frozen_stages_out_of_range():
    with pytest.raises(ConfigError, match="frozen_stages must be in -1..4"):
        TimmBackbone(model_name="convnext_atto", frozen_stages=5)


def _timm_reference(name: str, out_indices: tuple, path) -> torch.nn.Module:
    """timm's own loader of a local file, the reference for ours."""
    return timm.create_model(name, features_only=True, out_indices=out_indices, pretrained=True,
                             pretrained_cfg_overlay={"file": str(path)}).eval()


@pytest.mark.parametrize(("name", "out_indices"), [("resnet18", (2, 3, 4)),
                                                   ("convnext_atto", (1, 2, 3))])
def test_pretrained_file_of_a_classifier_gives_timms_features(tmp_path, name, out_indices):
    torch.manual_seed(0)
    path = tmp_path / f"{name}.pth"
    torch.save(timm.create_model(name, pretrained=False).state_dict(), path)
    torch.manual_seed(1)  # another random init, so that equal outputs mean the file was read
    backbone = TimmBackbone(model_name=name, out_indices=out_indices, pretrained_file=str(path))
    images = torch.randn(1, 3, 64, 64)
    before = backbone.eval()(images)
    assert "pretrained" in backbone.init_weights()
    ours = backbone(images)
    theirs = _timm_reference(name, out_indices, path)(images)
    assert not torch.allclose(before[-1], theirs[-1])
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b)
    assert backbone.frozen_parts() == []


def test_pretrained_file_round_trip_of_its_own_state_dict(tmp_path):
    torch.manual_seed(0)
    source = TimmBackbone(model_name="mobilenetv3_small_050", out_indices=(2, 3, 4)).eval()
    torch.save({"state_dict": source.model.state_dict()}, tmp_path / "own.pth")
    torch.manual_seed(1)
    target = TimmBackbone(model_name="mobilenetv3_small_050", out_indices=(2, 3, 4),
                          pretrained_file=str(tmp_path / "own.pth"))
    target.init_weights()
    images = torch.randn(2, 3, 64, 64)
    for a, b in zip(source(images), target.eval()(images)):
        torch.testing.assert_close(a, b)


def test_pretrained_file_of_another_model_names_the_keys(tmp_path):
    torch.save(timm.create_model("resnet18", pretrained=False).state_dict(), tmp_path / "r18.pth")
    backbone = TimmBackbone(model_name="convnext_atto", pretrained_file=str(tmp_path / "r18.pth"))
    with pytest.raises(CheckpointError, match=r"missing key\(s\) \['head.*unexpected key\(s\)"):
        backbone.init_weights()
    missing = TimmBackbone(model_name="convnext_atto", pretrained_file=str(tmp_path / "no.pth"))
    with pytest.raises(CheckpointError, match="not found"):
        missing.init_weights()


def test_missing_timm_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "timm", None)  # "import timm" now raises ImportError
    with pytest.raises(ConfigError, match=r'pip install "detbox\[timm\]"'):
        MODELS.build({"type": "TimmBackbone", "model_name": "resnet18"})


def test_unknown_model_name():
    with pytest.raises(ConfigError, match="unknown timm model 'convnext_tinyy'"):
        TimmBackbone(model_name="convnext_tinyy")


def test_faster_rcnn_with_fpn_in_channels_from_timm_trains_and_predicts():
    cfg = tiny_two_stage_cfg("faster")
    cfg["backbone"] = {"type": "TimmBackbone", "model_name": "mobilenetv3_small_050",
                       "out_indices": (1, 2, 3, 4)}
    del cfg["neck"]["in_channels"]
    model = build(cfg)
    assert model.neck.in_channels == [8, 16, 24, 288]
    assert [conv.in_channels for conv in model.neck.lateral_convs] == [8, 16, 24, 288]
    history = train_steps(model, rectangles_batch(), steps=3)
    assert all(torch.isfinite(torch.tensor(list(h.values()))).all() for h in history)
    model.eval()
    with torch.no_grad():
        results = model.predict(rectangles_batch(with_gt=False))
    assert len(results) == 2 and all(r.boxes.shape[1] == 4 for r in results)


def test_retinanet_with_convnext_trains_and_predicts_on_an_empty_image():
    cfg = tiny_retinanet_cfg()
    cfg["backbone"] = {"type": "TimmBackbone", "model_name": "convnext_atto"}
    del cfg["neck"]["in_channels"]
    model = build(cfg)
    history = train_steps(model, rectangles_batch(), steps=2, lr=0.001)
    assert all(v == v and abs(v) < 1e4 for h in history for v in h.values())
    model.eval()
    empty = rectangles_batch(with_gt=False)
    empty.images.zero_()
    with torch.no_grad():
        results = model.predict(empty)
    assert len(results) == 2
