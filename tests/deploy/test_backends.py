"""Exported backends (onnxruntime, OpenVINO): the same detections as PyTorch, a parity check
that notices when they are not, clear errors for what is not supported."""

import copy
import dataclasses

import numpy as np
import pytest
import torch

from detbox.data.inference import prepare_batch
from detbox.deploy.backends import BACKEND_CHOICES, backend_detector, check_backend
from detbox.deploy.backends.parity import check_parity
from detbox.deploy.benchmark import synthetic_images
from detbox.errors import ConfigError, DetboxError
from tests.tiny_detector import RETINANET, build_tiny, tiny_config, two_stage_model

pytest.importorskip("onnxruntime")
pytest.importorskip("openvino")

# OpenVINO runs in a child process: its thread pool makes later forks of this process crash.
BACKENDS = ["onnxruntime", pytest.param("openvino", marks=pytest.mark.own_process)]
MODELS = {"retinanet": RETINANET, "faster_rcnn": two_stage_model("FasterRCNN"),
          "mask_rcnn": two_stage_model("MaskRCNN")}


def assert_identical(ref, got):
    """The bar the backends must meet: same detections in the same order, box corners within
    0.01 px, scores within 1e-4, masks (bool, original size) nearly the same pixels."""
    assert len(got) == len(ref)
    assert torch.equal(got.labels, ref.labels)
    assert (got.boxes - ref.boxes).abs().max() <= 0.01
    assert (got.scores - ref.scores).abs().max() <= 1e-4
    if ref.masks is not None:
        assert got.masks.shape == ref.masks.shape and got.masks.dtype == torch.bool
        assert (got.masks != ref.masks).float().mean() < 1e-3


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", list(MODELS))
def test_backend_matches_pytorch(name, backend):
    model = build_tiny(tiny_config(MODELS[name]))
    runner = backend_detector(model, backend)
    check = runner.parity
    assert check.ok and check.num_backend == check.num_torch > 10
    parts = {o.part for o in check.outputs}
    assert parts == ({"network"} if name == "retinanet" else
                     {"network", "box_head"} | ({"mask_head"} if name == "mask_rcnn" else set()))
    # Two images of other sizes in one batch (dynamic batch, height and width).
    images = synthetic_images(1, (70, 120), seed=3) + synthetic_images(1, (100, 60), seed=4)
    batch = prepare_batch(model.cfg, images)
    with torch.no_grad():
        refs = model.predict(batch)
    gots = runner.predict(batch)
    for ref, got, image in zip(refs, gots, images):
        assert len(ref) > 5
        assert got.boxes[:, 2].max() <= image.shape[1]  # original image coordinates
        assert_identical(ref, got)


@pytest.mark.parametrize("backend", BACKENDS)
def test_no_proposal_no_detection(backend):
    """No RoI reaches the box and mask heads: the backend answers as PyTorch does (empty)."""
    model = build_tiny(tiny_config(two_stage_model("MaskRCNN")))
    runner = backend_detector(model, backend)
    rpn = model.rpn_head
    rpn.test_proposals = dataclasses.replace(rpn.test_proposals, min_box_size=1e4)
    batch = prepare_batch(model.cfg, synthetic_images(1, (64, 64)))
    with torch.no_grad():
        ref = model.predict(batch)[0]
    got = runner.predict(batch)[0]
    assert len(ref) == len(got) == 0 and got.masks.shape == ref.masks.shape == (0, 64, 64)


@pytest.mark.parametrize("backend", BACKENDS)
def test_parity_check_catches_a_difference(backend):
    model = build_tiny(tiny_config(two_stage_model("FasterRCNN")))
    runner = backend_detector(model, backend)
    with torch.no_grad():  # PyTorch's box head changes; the exported graph does not
        model.roi_head.bbox_head.fc_reg.bias.add_(0.01)
    check = check_parity(model, runner)
    assert not check.ok
    failing = [o for o in check.outputs if not o.ok]
    assert [o.output for o in failing] == ["bbox_pred"]
    assert failing[0].max_abs == pytest.approx(0.01, rel=1e-3)
    with pytest.raises(DetboxError, match=f"^{backend} differs from PyTorch on FasterRCNN: "
                       "output 'bbox_pred' of the box_head graph by up to 1.00e-02"):
        check.raise_if_failed()


def test_unsupported_model_and_unknown_backend():
    from tests.models.two_stage._tiny import tiny_two_stage_cfg

    cfg = tiny_config(tiny_two_stage_cfg("ms", num_classes=3))
    model = build_tiny(cfg)
    with pytest.raises(DetboxError, match="^--backend openvino: MaskScoringRCNN with a MaskIoU "
                       "head .* is not supported; it supports RetinaNet"):
        backend_detector(model, "openvino")
    guided = copy.deepcopy(RETINANET)
    guided["bbox_head"] = {"type": "GARetinaHead", "in_channels": 16, "feat_channels": 16,
                           "stacked_convs": 1}
    with pytest.raises(DetboxError, match="^--backend onnxruntime: RetinaNet with a GARetinaHead "
                       "is not supported; it supports RetinaNet"):
        backend_detector(build_tiny(tiny_config(guided)), "onnxruntime")
    with pytest.raises(ConfigError, match="unknown backend 'tensorrt'; choose one of pytorch, "
                       "onnxruntime, openvino"):
        check_backend("tensorrt")


def test_cli_choices_are_the_backends():
    from detbox.cli.common import BACKEND_CHOICES as CLI_CHOICES

    assert CLI_CHOICES == BACKEND_CHOICES


@pytest.fixture(scope="module")
def mask_files(tmp_path_factory):
    from tests.tiny_detector import write_tiny

    folder = tmp_path_factory.mktemp("mask")
    config, checkpoint = write_tiny(folder, two_stage_model("MaskRCNN"))
    image = folder / "image.png"
    from PIL import Image

    Image.fromarray(synthetic_images(1, (60, 80), seed=5)[0]).save(image)
    return str(config), str(checkpoint), str(image)


def _records(path):
    import json

    return next(iter(json.loads(path.read_text()).values()))["predictions"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_infer_cli_with_backend(backend, mask_files, tmp_path, capsys):
    from detbox.cli.main import main

    config, checkpoint, image = mask_files
    plain, exported = tmp_path / "plain.json", tmp_path / f"{backend}.json"
    common = [config, checkpoint, image, "--score-thr", "0.05"]
    assert main(["infer", *common, "--no-fast", "--out", str(plain)]) == 0
    assert main(["infer", *common, "--backend", backend, "--out", str(exported)]) == 0
    out = capsys.readouterr().out
    assert f"parity check: {backend} vs PyTorch (MaskRCNN" in out
    ref, got = _records(plain), _records(exported)
    assert len(got) == len(ref) > 5
    for a, b in zip(ref, got):
        assert a["class"] == b["class"] and abs(a["score"] - b["score"]) <= 1e-4
        assert np.allclose([a["bbox"][k] for k in a["bbox"]], [b["bbox"][k] for k in b["bbox"]],
                           atol=0.01, rtol=0)
        assert a["mask"]["size"] == b["mask"]["size"] == [60, 80]


def test_cli_backend_errors(mask_files, capsys):
    from detbox.cli.main import main

    config, checkpoint, image = mask_files
    with pytest.raises(SystemExit):
        main(["infer", config, checkpoint, image, "--backend", "tensorrt"])
    assert "invalid choice: 'tensorrt'" in capsys.readouterr().err
    assert main(["infer", config, checkpoint, image, "--backend", "openvino",
                 "--device", "cuda"]) == 2
    assert "--backend openvino runs on the CPU; drop --device cuda" in capsys.readouterr().err


@pytest.mark.own_process
def test_test_and_benchmark_cli_with_backend(tmp_path, capsys):
    """``detbox test --backend`` scores as the plain model does; ``detbox benchmark --backend``
    times the backend."""
    import json

    from detbox.cli.main import main
    from tests.tiny_detector import write_tiny

    config, checkpoint = (str(p) for p in write_tiny(tmp_path, RETINANET, with_data=True))
    outputs = {}
    for name, options in (("plain", ["--no-fast"]), ("ort", ["--backend", "onnxruntime"])):
        metrics, results = tmp_path / f"{name}.json", tmp_path / f"{name}_results.json"
        assert main(["test", config, checkpoint, *options, "--json-out", str(metrics),
                     "--out", str(results)]) == 0
        outputs[name] = json.loads(metrics.read_text()), json.loads(results.read_text())
    (ref, ref_dets), (got, got_dets) = outputs["plain"], outputs["ort"]
    assert len(got_dets) == len(ref_dets) > 10
    for a, b in zip(ref_dets, got_dets):
        assert a["category_id"] == b["category_id"] and a["image_id"] == b["image_id"]
        assert a["score"] == pytest.approx(b["score"], abs=1e-4)
        assert a["bbox"] == pytest.approx(b["bbox"], abs=0.02)
    scalars = {k: v for k, v in ref.items() if isinstance(v, float)}
    assert "bbox_mAP" in scalars and scalars == pytest.approx({k: got[k] for k in scalars})
    capsys.readouterr()
    assert main(["benchmark", config, checkpoint, "--backend", "openvino", "--num-images", "2",
                 "--shape", "64"]) == 0
    out = capsys.readouterr().out
    assert "parity check: openvino vs PyTorch (RetinaNet" in out
    assert "benchmarking RetinaNet (openvino)" in out and "2 images in 2 batches" in out
