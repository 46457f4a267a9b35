"""A checkpoint that does not fit the config's model is one clear line, wherever it is loaded
for inference; a checkpoint from a newer detbox is refused in one line."""

import pytest
import torch

from detbox.apis import init_detector
from detbox.apis.build import build_detector, fill_num_classes
from detbox.cli.main import main
from detbox.config import load_config
from detbox.engine.checkpoint import FORMAT_VERSION, load_checkpoint, save_checkpoint
from detbox.errors import CheckpointError, ConfigError
from tests.conftest import REPO_ROOT

RETINANET = str(REPO_ROOT / "configs/demo/retinanet_r18_fpn_synthetic.py")
MASK_RCNN = str(REPO_ROOT / "configs/mask_rcnn/mask_rcnn_r18_fpn_synthetic.py")
CLASSES = ["circle", "square", "triangle"]
TINY_VAL = ["val_dataloader.dataset.num_images=2", "val_dataloader.dataset.image_size=64",
            "val_dataloader.num_workers=0"]


@pytest.fixture(scope="module")
def retinanet_checkpoint(tmp_path_factory):
    """An untrained demo RetinaNet saved as a detbox checkpoint (3 classes)."""
    cfg = load_config(RETINANET)
    fill_num_classes(cfg, CLASSES, source="the test")
    torch.manual_seed(0)
    model = build_detector(cfg.model, CLASSES, [1, 2, 3])
    path = tmp_path_factory.mktemp("ckpt") / "retinanet.pth"
    save_checkpoint(path, model=model, meta={"class_names": CLASSES, "cat_ids": [1, 2, 3]})
    return path


@pytest.fixture(autouse=True)
def synthetic_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DETBOX_CACHE", str(tmp_path / "cache"))


def _one_line_error(capsys, command: str) -> str:
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err + captured.out
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert len(lines) == 1, captured.err
    assert lines[0].startswith(f"detbox {command}: error: ")
    return lines[0]


def test_detbox_test_with_another_models_checkpoint_is_one_line(retinanet_checkpoint, capsys):
    code = main(["test", MASK_RCNN, str(retinanet_checkpoint), "--cfg-options", *TINY_VAL])
    assert code == 2
    line = _one_line_error(capsys, "test")
    assert str(retinanet_checkpoint) in line and MASK_RCNN in line
    assert "differ in shape (" in line and "checkpoint (" in line and "vs model (" in line
    assert "missing from the checkpoint" in line and "unexpected in the checkpoint" in line
    assert "config.json" in line


def test_detbox_infer_with_another_models_checkpoint_is_one_line(
        retinanet_checkpoint, tmp_path, capsys):
    image = tmp_path / "image.png"
    from PIL import Image

    Image.new("RGB", (32, 32)).save(image)
    assert main(["infer", MASK_RCNN, str(retinanet_checkpoint), str(image)]) == 2
    assert "does not fit the model of config" in _one_line_error(capsys, "infer")


def test_init_detector_names_keys_with_both_shapes(retinanet_checkpoint):
    cfg = load_config(RETINANET)
    cfg.model.neck.out_channels = 32
    cfg.model.bbox_head.in_channels = 32
    with pytest.raises(CheckpointError) as caught:
        init_detector(cfg, retinanet_checkpoint, device="cpu")
    message = str(caught.value)
    assert "\n" not in message
    assert "neck.lateral_convs.0.weight: checkpoint (64, " in message
    assert "vs model (32, " in message and "and " in message and "more" in message
    assert "the work dir's config.json is the config this checkpoint was trained with" in message


def test_init_detector_with_another_class_count_points_to_load_from(retinanet_checkpoint):
    with pytest.raises(ConfigError) as caught:
        init_detector(RETINANET, retinanet_checkpoint, device="cpu",
                      cfg_options={"model.bbox_head.num_classes": 5})
    message = str(caught.value)
    assert "\n" not in message and "trained on 3 classes" in message
    assert f"--load-from {retinanet_checkpoint}" in message and "config.json" in message


def test_matching_checkpoint_loads(retinanet_checkpoint):
    # fast=False: the plain model, whose parameters are the checkpoint's one for one (the fast
    # path folds norms into the convolutions).
    model = init_detector(RETINANET, retinanet_checkpoint, device="cpu", fast=False)
    saved = load_checkpoint(retinanet_checkpoint)["state_dict"]
    assert all(torch.equal(v, saved[k]) for k, v in model.state_dict().items())


def test_checkpoint_records_versions_and_newer_format_is_refused(
        retinanet_checkpoint, tmp_path, capsys):
    checkpoint = load_checkpoint(retinanet_checkpoint)
    assert checkpoint["format_version"] == FORMAT_VERSION
    assert isinstance(checkpoint["detbox_version"], str)
    raw = torch.load(retinanet_checkpoint, weights_only=True)
    raw["format_version"] = FORMAT_VERSION + 1
    newer = tmp_path / "newer.pth"
    torch.save(raw, newer)
    with pytest.raises(CheckpointError, match=f"format {FORMAT_VERSION + 1}.*upgrade detbox"):
        load_checkpoint(newer)
    assert main(["test", RETINANET, str(newer), "--cfg-options", *TINY_VAL]) == 2
    assert "upgrade detbox" in _one_line_error(capsys, "test")
