"""Converted torchvision SSDs reproduce torchvision's detections end to end on image files.

As ``tests/models/two_stage/test_torchvision_equivalence.py``: a torchvision model with random
weights under a fixed seed is saved, converted as ``detbox convert-weights`` does (COCO's 80
classes) and loaded with ``init_detector(configs/torchvision/<arch>.py)``; detbox runs
``inference_detector`` on a Penn-Fudan PNG file (its own decoding, 300 / 320 px resize without
keeping the ratio, normalization, no padding) and torchvision its model on the same file.
Both keep their default post-processing (SSD300: score > 0.01, 400 per class, NMS 0.45, 200
detections; SSDlite: 0.001, 300, 0.55, 300).

What random weights need, and why:
- the ten ``N/A`` slots of torchvision's softmax get a bias of -1e4 on every level: a trained
  model never scores them, but random ones would take softmax mass that the 80-class detbox
  model does not have;
- SSDlite's batch norms keep their initial running statistics (mean 0, variance 1) in a fresh
  model, and with its small initial weights (std 0.03) the maps fade to ~1e-8 by the head, so
  every class scores 1/81: a 24,000-way tie. Their statistics are therefore taken from one
  training-mode pass over a random batch (momentum 1) before the model is saved, which
  spreads the scores (top ones ~0.9) like a trained model's.
The ``TOP_K`` most confident torchvision detections must each have a detbox detection with the
same COCO category id, every box coordinate within ``BOX_TOL`` pixels and the score within
``SCORE_TOL``, and both models must return the same number of detections. Measured here: box
differences up to 1.2e-3 px, score differences up to 4e-6.
"""

from __future__ import annotations

import pytest
import torch
import torchvision
from PIL import Image
from torchvision.transforms.functional import pil_to_tensor

from detbox.apis.convert_weights import convert_torchvision_checkpoint
from detbox.apis.inference import inference_detector, init_detector
from detbox.models.weight_conversion import unused_torchvision_slots
from tests.conftest import REPO_ROOT, shared_dataset
from tests.models.two_stage.test_torchvision_equivalence import _assert_equivalent

IMAGE = "FudanPed00005.png"


def _calibrate_batch_norms(model: torch.nn.Module, size: int) -> None:
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.momentum = 1.0
    model.train()
    with torch.no_grad():
        feats = list(model.backbone(torch.rand(2, 3, size, size) * 2 - 1).values())
        model.head(feats)


def _torchvision_model(arch: str) -> torch.nn.Module:
    torch.manual_seed(0)
    model = getattr(torchvision.models.detection, arch)(weights=None, weights_backbone=None)
    if arch.startswith("ssdlite"):
        _calibrate_batch_norms(model, 320)
    unused = unused_torchvision_slots()[1:]  # background stays
    with torch.no_grad():
        for predictor in model.head.classification_head.module_list:
            last = predictor if isinstance(predictor, torch.nn.Conv2d) else predictor[-1]
            last.bias.view(-1, 91)[:, unused] = -1e4
    return model.eval()


@pytest.mark.parametrize("arch", ["ssd300_vgg16", "ssdlite320_mobilenet_v3_large"])
def test_converted_ssd_reproduces_torchvision_on_files(arch, tmp_path):
    torch.set_num_threads(2)
    file = str(shared_dataset("pennfudan") / "images" / IMAGE)
    tv_model = _torchvision_model(arch)
    torch.save(tv_model.state_dict(), tmp_path / "tv.pth")
    convert_torchvision_checkpoint(arch, tmp_path / "tv.pth", tmp_path / "detbox.pth")
    model = init_detector(REPO_ROOT / "configs" / "torchvision" / f"{arch}.py",
                          tmp_path / "detbox.pth", device="cpu")
    image = pil_to_tensor(Image.open(file).convert("RGB")).float() / 255
    with torch.no_grad():
        expected = tv_model([image])[0]
    ours = inference_detector(model, [file])[0]
    ours.labels = torch.tensor(model.dataset_meta["cat_ids"])[ours.labels]
    assert expected["scores"][0] > 0.5  # spread scores, not a tie of near-uniform ones
    _assert_equivalent(expected, ours)
