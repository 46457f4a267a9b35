"""``detbox convert-weights detectron-caffe``: Detectron / MSRA caffe ImageNet ResNet pickles.

The golden test writes a random caffe-style ResNet-50 of detbox as a Detectron pickle (the
reverse name mapping is written out below), converts it with the command and loads the result
into a fresh backbone: the C2..C5 features must be the original ones.
"""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
import torch
from torchvision.ops.misc import FrozenBatchNorm2d

from detbox.cli.main import main
from detbox.errors import CheckpointError
from detbox.models.backbones import ResNet
from detbox.models.weight_conversion.detectron_caffe import (
    FROZEN_BN_EPS,
    convert_detectron_caffe_resnet,
    read_detectron_pickle,
)
from detbox.registry import MODELS

from .test_inference_mode import _randomize_norms
from .test_resnet_caffe_style import tiny_caffe_faster_rcnn

BRANCHES = {"conv1": "branch2a", "conv2": "branch2b", "conv3": "branch2c"}


def _affine(norm: FrozenBatchNorm2d) -> tuple[np.ndarray, np.ndarray]:
    """The norm as ``x * s + b``, the way Detectron releases its norms."""
    scale = norm.weight * (norm.running_var + norm.eps).rsqrt()
    return scale.numpy(), (norm.bias - norm.running_mean * scale).numpy()


def to_detectron_blobs(model: ResNet) -> dict[str, np.ndarray]:
    """detbox ResNet -> Detectron blob names: the reverse of the converter, written out."""
    blobs = {"conv1_w": model.conv1.weight.detach().numpy()}
    blobs["res_conv1_bn_s"], blobs["res_conv1_bn_b"] = _affine(model.bn1)
    for stage in range(1, 5):
        for index, block in enumerate(getattr(model, f"layer{stage}")):
            prefix = f"res{stage + 1}_{index}"
            convs = [(BRANCHES[c], getattr(block, c), getattr(block, f"bn{c[-1]}"))
                     for c in ("conv1", "conv2", "conv3")]
            if block.downsample is not None:
                convs.append(("branch1", block.downsample[0], block.downsample[1]))
            for branch, conv, norm in convs:
                blobs[f"{prefix}_{branch}_w"] = conv.weight.detach().numpy()
                blobs[f"{prefix}_{branch}_bn_s"], blobs[f"{prefix}_{branch}_bn_b"] = _affine(norm)
    blobs["fc1000_w"] = np.zeros((1000, 2048), np.float32)
    blobs["fc1000_b"] = np.zeros(1000, np.float32)
    blobs["conv1_w_momentum"] = np.zeros_like(blobs["conv1_w"])
    return blobs


def write_pickle(path, blobs, wrap: bool = True) -> None:
    with open(path, "wb") as f:
        pickle.dump({"blobs": blobs} if wrap else blobs, f, protocol=2)


@pytest.fixture(scope="module")
def caffe_r50():
    torch.manual_seed(0)
    model = ResNet(depth=50, style="caffe", out_indices=(0, 1, 2, 3))
    return _randomize_norms(model).eval()


def test_converted_weights_give_the_same_c2_to_c5_features(caffe_r50, tmp_path, capsys):
    write_pickle(tmp_path / "R-50.pkl", to_detectron_blobs(caffe_r50))
    out = tmp_path / "out" / "r50_caffe.pth"
    assert main(["convert-weights", "detectron-caffe", str(tmp_path / "R-50.pkl"),
                 str(out)]) == 0
    assert "ResNet-50 (caffe style)" in capsys.readouterr().out
    state = torch.load(out, map_location="cpu", weights_only=True)
    assert not any(k.startswith("fc") for k in state)
    assert set(state) == {k for k in caffe_r50.state_dict() if not k.endswith("batches_tracked")}
    var = state["layer3.2.bn2.running_var"]
    assert torch.equal((var + FROZEN_BN_EPS).rsqrt(), torch.ones_like(var))  # exactly x*s+b
    assert not state["layer3.2.bn2.running_mean"].any()
    fresh = ResNet(depth=50, style="caffe", out_indices=(0, 1, 2, 3)).eval()
    fresh.load_torchvision_weights(out)
    images = torch.randn(2, 3, 64, 96) * 50
    with torch.no_grad():
        expected, got = caffe_r50(images), fresh(images)
    assert [o.shape[1] for o in got] == [256, 512, 1024, 2048]
    for a, b in zip(expected, got):
        assert torch.equal(b, a)  # x * s + b exactly: the same kernels on the same numbers
    assert os.listdir(tmp_path / "out") == ["r50_caffe.pth"]  # no temporary file left


def test_detector_init_cfg_reads_the_converted_file(caffe_r50, tmp_path):
    write_pickle(tmp_path / "R-50.pkl", to_detectron_blobs(caffe_r50), wrap=False)
    assert main(["convert-weights", "detectron-caffe", str(tmp_path / "R-50.pkl"),
                 str(tmp_path / "r50.pth")]) == 0
    cfg = tiny_caffe_faster_rcnn()
    cfg["init_cfg"] = {"backbone_checkpoint": str(tmp_path / "r50.pth")}
    detector = MODELS.build(cfg)
    detector.init_weights()
    assert torch.equal(detector.backbone.layer4[2].conv3.weight, caffe_r50.layer4[2].conv3.weight)
    images = torch.randn(1, 3, 64, 64) * 50
    with torch.no_grad():
        for a, b in zip(caffe_r50(images), detector.backbone.eval()(images)):
            torch.testing.assert_close(b, a, rtol=1e-6, atol=1e-5)


def test_unknown_and_missing_blobs_name_the_file_and_the_key(caffe_r50, tmp_path):
    blobs = to_detectron_blobs(caffe_r50)
    with pytest.raises(CheckpointError, match=r"R-50\.pkl.*'res6_0_branch2a_w'"):
        convert_detectron_caffe_resnet({**blobs, "res6_0_branch2a_w": blobs["conv1_w"]},
                                       source="R-50.pkl")
    without_bias = {k: v for k, v in blobs.items() if k != "res4_1_branch2b_bn_b"}
    with pytest.raises(CheckpointError, match=r"R-50\.pkl lacks the blob 'res4_1_branch2b_bn_b'"):
        convert_detectron_caffe_resnet(without_bias, source="R-50.pkl")
    without_conv = {k: v for k, v in blobs.items() if k != "res2_0_branch1_w"}
    with pytest.raises(CheckpointError, match="'res2_0_branch1_bn_b' but not its conv"):
        convert_detectron_caffe_resnet(without_conv, source="R-50.pkl")
    with pytest.raises(CheckpointError, match="'conv1_w'"):
        convert_detectron_caffe_resnet({k: v for k, v in blobs.items() if k != "conv1_w"})
    with pytest.raises(CheckpointError, match="'res2_0_branch2a_b'"):  # no conv biases
        convert_detectron_caffe_resnet({**blobs, "res2_0_branch2a_b": blobs["res_conv1_bn_b"]})


def test_command_errors_write_nothing(caffe_r50, tmp_path, capsys):
    blobs = to_detectron_blobs(caffe_r50)
    write_pickle(tmp_path / "bad.pkl", {**blobs, "pred_w": blobs["fc1000_w"]})
    target = tmp_path / "out.pth"
    assert main(["convert-weights", "detectron-caffe", str(tmp_path / "bad.pkl"),
                 str(target)]) == 2
    err = capsys.readouterr().err
    assert "bad.pkl" in err and "'pred_w'" in err and not target.exists()
    assert main(["convert-weights", "detectron-caffe", str(tmp_path / "none.pkl"),
                 str(target)]) == 2
    assert "not found" in capsys.readouterr().err and not target.exists()


def test_the_pickle_reader_refuses_code_and_non_pickles(tmp_path):
    (tmp_path / "text.pkl").write_text("not a pickle")
    with pytest.raises(CheckpointError, match="text.pkl is not a Detectron weights pickle"):
        read_detectron_pickle(tmp_path / "text.pkl")
    with open(tmp_path / "evil.pkl", "wb") as f:
        pickle.dump({"blobs": {"conv1_w": os.getcwd}}, f)
    with pytest.raises(CheckpointError, match="refusing to load"):
        read_detectron_pickle(tmp_path / "evil.pkl")
    legacy = pickle.dumps({"blobs": {"conv1_w": np.ones((2, 3), np.float32)}}, protocol=2)
    (tmp_path / "legacy.pkl").write_bytes(legacy.replace(b"numpy._core.", b"numpy.core."))
    assert read_detectron_pickle(tmp_path / "legacy.pkl")["conv1_w"].shape == (2, 3)  # NumPy 1
    write_pickle(tmp_path / "empty.pkl", {})
    with pytest.raises(CheckpointError, match="no blobs"):
        read_detectron_pickle(tmp_path / "empty.pkl")
