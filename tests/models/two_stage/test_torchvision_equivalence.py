"""Converted torchvision detectors reproduce torchvision's detections end to end on image files.

Each test builds a torchvision model with random weights under a fixed seed, saves its state
dict, converts the file as ``detbox convert-weights`` does (COCO's 80 classes) and loads it with
``init_detector(configs/torchvision/<arch>.py)``. detbox then runs ``inference_detector`` on
Penn-Fudan PNG files (its own decoding, resize, normalization and padding to 32) and torchvision
runs its model on the same files (decoded with Pillow, its own ``GeneralizedRCNNTransform``).
Both run at a reduced size (short side 320, long side at most 512) to keep the test fast on a
CPU, with the default score threshold 0.05; RetinaNet with 0 (its prior-initialised random
classifier scores about 0.01 everywhere).

Random weights differ from trained ones in two ways the test neutralises. The ten ``N/A`` slots
(and RetinaNet's background output) of torchvision's classifier get a bias of -1e4: a trained
model never scores them, but random ones would take softmax mass (or sigmoid detections) that
the 80-class detbox model cannot have. And random scores lie close together, so the order of
detections near the 100 / 300 cut is a near-tie: the test compares the ``TOP_K`` most confident
torchvision detections, each of which must have a detbox detection with the same COCO category
id, every box coordinate within ``BOX_TOL`` pixels and the score within ``SCORE_TOL`` (masks:
IoU >= ``MIN_MASK_IOU``), and both models must return the same number of detections.
Measured here (top 20; Faster R-CNN and RetinaNet on both images, Mask R-CNN on each): box
differences up to 2.4e-3 px, score differences up to 1.2e-5, mask IoU 1.0.
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
from detbox.structures import Instances
from tests.conftest import REPO_ROOT, shared_dataset

# FudanPed00005 resizes to 328 x 320: padded to 352, not a multiple of 64, so the stride-64
# level exercises torchvision's stride rule.
IMAGES = ("FudanPed00005.png", "FudanPed00004.png")
TOP_K = 20
BOX_TOL, SCORE_TOL, MIN_MASK_IOU = 0.01, 1e-4, 0.99


def _torchvision_model(arch: str, max_dets: int) -> torch.nn.Module:
    torch.manual_seed(0)
    if arch.startswith("retinanet"):
        options = {"detections_per_img": max_dets, "score_thresh": 0.0}
    else:
        options = {"box_detections_per_img": max_dets}
    builder = getattr(torchvision.models.detection, arch)
    model = builder(weights=None, weights_backbone=None, min_size=320, max_size=512, **options)
    unused = unused_torchvision_slots()
    with torch.no_grad():
        if arch.startswith("retinanet"):
            model.head.classification_head.cls_logits.bias.view(9, -1)[:, unused] = -1e4
        else:
            model.roi_heads.box_predictor.cls_score.bias[unused[1:]] = -1e4
    return model.eval()


def _run_both(arch: str, names, max_dets: int, tmp_path) -> tuple[list[dict], list[Instances]]:
    torch.set_num_threads(2)  # ResNet-50 at 320 pixels: worth both cores
    files = [str(shared_dataset("pennfudan") / "images" / name) for name in names]
    tv_model = _torchvision_model(arch, max_dets)
    torch.save(tv_model.state_dict(), tmp_path / "tv.pth")
    convert_torchvision_checkpoint(arch, tmp_path / "tv.pth", tmp_path / "detbox.pth")
    options = {"test_pipeline.1.scale": (512, 320)}
    if arch.startswith("retinanet"):
        options.update({"model.bbox_head.max_per_img": max_dets, "model.bbox_head.score_thr": 0.0})
    else:
        options["model.roi_head.bbox_head.max_per_img"] = max_dets
    model = init_detector(REPO_ROOT / "configs" / "torchvision" / f"{arch}.py",
                          tmp_path / "detbox.pth", device="cpu", cfg_options=options)
    images = [pil_to_tensor(Image.open(f).convert("RGB")).float() / 255 for f in files]
    with torch.no_grad():
        expected = tv_model(images)
    ours = inference_detector(model, files)
    cat_ids = torch.tensor(model.dataset_meta["cat_ids"])
    for result in ours:
        result.labels = cat_ids[result.labels]  # compare COCO ids with torchvision's labels
    return expected, ours


def _assert_equivalent(expected: dict, ours: Instances) -> None:
    assert len(ours) == len(expected["boxes"]) >= TOP_K
    tv_masks = expected["masks"][:, 0] >= 0.5 if "masks" in expected else None
    free = torch.ones(len(ours), dtype=torch.bool)
    for i in range(TOP_K):
        close = (
            free
            & (ours.labels == expected["labels"][i])
            & ((ours.boxes - expected["boxes"][i]).abs().amax(dim=1) <= BOX_TOL)
            & ((ours.scores - expected["scores"][i]).abs() <= SCORE_TOL)
        )
        candidates = torch.nonzero(close).flatten()
        assert candidates.numel(), f"torchvision detection {i} has no detbox counterpart"
        j = int(candidates[0])
        free[j] = False
        if tv_masks is not None:
            assert ours.masks.dtype == torch.bool
            inter = (tv_masks[i] & ours.masks[j]).sum().item()
            union = (tv_masks[i] | ours.masks[j]).sum().item()
            assert union == 0 or inter / union >= MIN_MASK_IOU, (i, j, inter, union)


# Detections kept per image: torchvision's defaults (100, 300), fewer for Mask R-CNN, whose mask
# head on every detection dominates the run time on a CPU.
@pytest.mark.parametrize(
    ("arch", "names", "max_dets"),
    [
        ("fasterrcnn_resnet50_fpn", IMAGES[:1], 100),
        ("maskrcnn_resnet50_fpn", IMAGES[:1], 30),
        ("retinanet_resnet50_fpn", IMAGES[:1], 300),
    ],
)
def test_converted_model_reproduces_torchvision_on_files(arch, names, max_dets, tmp_path):
    expected, ours = _run_both(arch, names, max_dets, tmp_path)
    for exp, res in zip(expected, ours, strict=True):
        _assert_equivalent(exp, res)


def test_converter_maps_classes_and_rejects_unknown_keys():
    from detbox.errors import CheckpointError
    from detbox.models.weight_conversion import convert_torchvision_state_dict

    torch.manual_seed(0)
    tv_model = torchvision.models.detection.fasterrcnn_resnet50_fpn(
        weights=None, weights_backbone=None, num_classes=4
    )
    state = tv_model.state_dict()
    converted = convert_torchvision_state_dict("fasterrcnn_resnet50_fpn", state)
    assert any(k.endswith("num_batches_tracked") for k in state)
    assert not any(k.endswith("num_batches_tracked") for k in converted)
    cls_w = state["roi_heads.box_predictor.cls_score.weight"]
    assert torch.equal(converted["roi_head.bbox_head.fc_cls.weight"], cls_w[[1, 2, 3, 0]])
    reg_w = state["roi_heads.box_predictor.bbox_pred.weight"]
    assert torch.equal(converted["roi_head.bbox_head.fc_reg.weight"], reg_w[4:])
    picked = convert_torchvision_state_dict("fasterrcnn_resnet50_fpn", state, class_ids=[3, 1])
    assert torch.equal(picked["roi_head.bbox_head.fc_cls.weight"], cls_w[[3, 1, 0]])
    assert torch.equal(
        picked["roi_head.bbox_head.fc_reg.weight"], torch.cat([reg_w[12:16], reg_w[4:8]])
    )
    with pytest.raises(CheckpointError, match="no detbox counterpart"):
        convert_torchvision_state_dict("fasterrcnn_resnet50_fpn", {**state, "extra.w": cls_w})
    with pytest.raises(CheckpointError, match="supported"):
        convert_torchvision_state_dict("keypointrcnn_resnet50_fpn", state)
