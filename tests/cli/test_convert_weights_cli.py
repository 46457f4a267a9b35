"""``detbox convert-weights``: a torchvision checkpoint becomes a detbox one that infers."""

import numpy as np
import torch
from torchvision.models.detection import fasterrcnn_resnet50_fpn

from detbox.apis.inference import inference_detector, init_detector
from detbox.cli.main import main
from detbox.engine import load_checkpoint
from tests.conftest import REPO_ROOT


def test_convert_torchvision_faster_rcnn_and_infer(tmp_path, capsys):
    torch.manual_seed(0)
    tv_model = fasterrcnn_resnet50_fpn(weights=None, weights_backbone=None).eval()
    source, target = tmp_path / "tv.pth", tmp_path / "detbox.pth"
    torch.save(tv_model.state_dict(), source)

    assert main(["convert-weights", "torchvision", "fasterrcnn_resnet50_fpn",
                 str(source), str(target)]) == 0
    meta = load_checkpoint(target)["meta"]
    assert len(meta["class_names"]) == 90 and meta["class_names"][0] == "person"
    assert meta["cat_ids"][:3] == [1, 2, 3]

    config = REPO_ROOT / "configs/torchvision/fasterrcnn_resnet50_fpn.py"
    model = init_detector(config, target, device="cpu",
                          cfg_options={"test_pipeline.1.scale": (320, 200)})
    image = np.random.default_rng(0).integers(0, 255, (120, 160, 3), dtype=np.uint8)
    result = inference_detector(model, image)
    assert result.boxes.shape[1] == 4
    assert bool((result.boxes[:, 2] <= 160).all()) and bool((result.boxes[:, 3] <= 120).all())


def test_convert_rejects_a_checkpoint_of_another_architecture(tmp_path, capsys):
    source = tmp_path / "other.pth"
    torch.save({"something.weight": torch.zeros(1)}, source)
    code = main(["convert-weights", "torchvision", "retinanet_resnet50_fpn", str(source),
                 str(tmp_path / "out.pth")])
    assert code == 2
    assert "something.weight" in capsys.readouterr().err
    assert not (tmp_path / "out.pth").exists()
