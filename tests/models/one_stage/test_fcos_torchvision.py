"""A converted torchvision ``fcos_resnet50_fpn`` reproduces torchvision's detections on files.

As ``tests/models/two_stage/test_torchvision_equivalence.py`` does for the R-CNNs and RetinaNet:
a random-weight torchvision FCOS (fixed seed; the unused background and ``N/A`` class outputs
get a bias of -1e4, as a trained model never scores them) is saved, converted as
``detbox convert-weights`` does and loaded with ``init_detector(configs/torchvision/
fcos_resnet50_fpn.py)``; both run on the same Penn-Fudan PNG files at short side 320 / long
side 512 with score threshold 0 (random scores are about sqrt(0.01 * 0.5)), and torchvision's 20
best detections must each have a detbox detection with the same COCO id, boxes within 0.01 px and
scores within 1e-4.
"""

from __future__ import annotations

import torch
import torchvision
from PIL import Image
from torchvision.transforms.functional import pil_to_tensor

from detbox.apis.convert_weights import convert_torchvision_checkpoint
from detbox.apis.inference import inference_detector, init_detector
from detbox.models.weight_conversion import unused_torchvision_slots
from tests.conftest import REPO_ROOT, shared_dataset
from tests.models.two_stage.test_torchvision_equivalence import IMAGES, _assert_equivalent

ARCH = "fcos_resnet50_fpn"
MAX_DETS = 100


def _torchvision_fcos() -> torch.nn.Module:
    torch.manual_seed(0)
    model = torchvision.models.detection.fcos_resnet50_fpn(
        weights=None, weights_backbone=None, min_size=320, max_size=512, score_thresh=0.0,
        detections_per_img=MAX_DETS)
    with torch.no_grad():
        model.head.classification_head.cls_logits.bias[unused_torchvision_slots()] = -1e4
    return model.eval()


def test_converted_fcos_reproduces_torchvision_on_files(tmp_path):
    torch.set_num_threads(2)
    files = [str(shared_dataset("pennfudan") / "images" / name) for name in IMAGES]
    tv_model = _torchvision_fcos()
    torch.save(tv_model.state_dict(), tmp_path / "tv.pth")
    meta = convert_torchvision_checkpoint(ARCH, tmp_path / "tv.pth", tmp_path / "detbox.pth")
    assert len(meta["class_names"]) == 80
    options = {"test_pipeline.1.scale": (512, 320), "model.bbox_head.score_thr": 0.0,
               "model.bbox_head.max_per_img": MAX_DETS}
    model = init_detector(REPO_ROOT / "configs" / "torchvision" / f"{ARCH}.py",
                          tmp_path / "detbox.pth", device="cpu", cfg_options=options)
    images = [pil_to_tensor(Image.open(f).convert("RGB")).float() / 255 for f in files]
    with torch.no_grad():
        expected = tv_model(images)
    ours = inference_detector(model, files)
    cat_ids = torch.tensor(model.dataset_meta["cat_ids"])
    for exp, result in zip(expected, ours, strict=True):
        result.labels = cat_ids[result.labels]
        _assert_equivalent(exp, result)


def test_fcos_converter_keeps_the_80_classes_and_every_key():
    from detbox.models.weight_conversion import convert_torchvision_state_dict
    from detbox.models.weight_conversion.torchvision import torchvision_num_classes

    torch.manual_seed(0)
    state = torchvision.models.detection.fcos_resnet50_fpn(
        weights=None, weights_backbone=None, num_classes=5).state_dict()
    assert torchvision_num_classes(ARCH, state) == 5
    converted = convert_torchvision_state_dict(ARCH, state, class_ids=[4, 2])
    weight = state["head.classification_head.cls_logits.weight"]
    assert torch.equal(converted["bbox_head.cls_logits.weight"], weight[[4, 2]])
    assert torch.equal(converted["bbox_head.centerness.weight"],
                       state["head.regression_head.bbox_ctrness.weight"])
    assert torch.equal(converted["bbox_head.reg_convs.1.weight"],  # a tower GroupNorm
                       state["head.regression_head.conv.1.weight"])
