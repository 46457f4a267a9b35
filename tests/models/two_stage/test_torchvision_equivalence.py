"""Converted torchvision detectors reproduce torchvision's inference on real images.

Each test builds a torchvision model with random weights under a fixed seed, converts its state
dict, loads it into the detbox model of ``configs/torchvision/<arch>.py`` and compares both on
the same preprocessed Penn-Fudan images with a score threshold of 0 (every candidate counts).
Both models get the tensor torchvision's own transform makes; torchvision's size divisor is set
to 64 so that its anchor strides (inferred as padded size // feature size) are the nominal ones.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image

from detbox.config import load_config
from detbox.models.weight_conversion import convert_torchvision_state_dict
from detbox.registry import MODELS
from detbox.structures import DetSample, ImageBatch, Instances
from tests.conftest import shared_dataset

CONFIGS = Path(__file__).resolve().parents[3] / "configs" / "torchvision"
IMAGES = ("FudanPed00005.png", "FudanPed00004.png")
BOX_TOL, SCORE_TOL, MIN_MASK_IOU = 0.01, 1e-4, 0.99


def _load_images(names) -> list[torch.Tensor]:
    root = shared_dataset("pennfudan") / "images"
    images = []
    for name in names:
        array = np.asarray(Image.open(root / name).convert("RGB"), dtype=np.float32)
        images.append(torch.from_numpy(array).permute(2, 0, 1) / 255.0)
    return images


def _torchvision_model(arch: str, max_dets: int) -> torch.nn.Module:
    torch.manual_seed(0)
    if arch.startswith("retinanet"):
        options = {"score_thresh": 0.0, "detections_per_img": max_dets}
    else:
        options = {"box_score_thresh": 0.0, "box_detections_per_img": max_dets}
    builder = getattr(torchvision.models.detection, arch)
    model = builder(weights=None, weights_backbone=None, min_size=320, max_size=512, **options)
    model.transform.size_divisible = 64
    if arch.startswith("retinanet"):
        # torchvision's RetinaNet also scores its background index 0, which detbox does not
        # have; silence it so that both models see the same candidates.
        with torch.no_grad():
            model.head.classification_head.cls_logits.bias.view(9, -1)[:, 0] = -1e4
    return model.eval()


def _detbox_model(arch: str, state_dict: dict, max_dets: int) -> torch.nn.Module:
    cfg = load_config(CONFIGS / f"{arch}.py")["model"]
    head = cfg["bbox_head"] if arch.startswith("retinanet") else cfg["roi_head"]["bbox_head"]
    head["score_thr"] = 0.0
    head["max_per_img"] = max_dets
    model = MODELS.build(cfg).eval()
    model.load_state_dict(convert_torchvision_state_dict(arch, state_dict), strict=True)
    return model


def _run_both(arch: str, names, max_dets: int) -> tuple[list[dict], list[Instances]]:
    torch.set_num_threads(2)  # ResNet-50 at 320 pixels: worth both cores (restored afterwards)
    images = _load_images(names)
    tv_model = _torchvision_model(arch, max_dets)
    model = _detbox_model(arch, tv_model.state_dict(), max_dets)
    with torch.no_grad():
        image_list, _ = tv_model.transform(images)
        expected = tv_model(images)
        samples = []
        for i, image in enumerate(images):
            (h, w), (new_h, new_w) = image.shape[-2:], image_list.image_sizes[i]
            samples.append(
                DetSample(
                    image_id=i,
                    file_name=names[i],
                    ori_shape=(h, w),
                    img_shape=(new_h, new_w),
                    scale_factor=(new_w / w, new_h / h),
                )
            )
        ours = model.predict(ImageBatch(image_list.tensors, samples))
    return expected, ours


def _match(expected: dict, ours: Instances) -> list[tuple[int, int]]:
    """One-to-one matches (torchvision index, detbox index) of equal detections."""
    labels = ours.labels + 1
    free = torch.ones(len(ours), dtype=torch.bool)
    pairs = []
    for i in range(len(expected["boxes"])):
        close = (
            free
            & (labels == expected["labels"][i])
            & ((ours.boxes - expected["boxes"][i]).abs().amax(dim=1) <= BOX_TOL)
            & ((ours.scores - expected["scores"][i]).abs() <= SCORE_TOL)
        )
        candidates = torch.nonzero(close).flatten()
        if candidates.numel():
            j = int(candidates[0])
            free[j] = False
            pairs.append((i, j))
    return pairs


def _assert_equivalent(expected: dict, ours: Instances) -> None:
    assert len(ours) == len(expected["boxes"]) > 0
    pairs = _match(expected, ours)
    # Random weights give many near-tied scores: only detections tied (within SCORE_TOL) with
    # the lowest kept score may fall on different sides of the detections_per_img cut.
    cut = expected["scores"].min().item() + SCORE_TOL
    unmatched_tv = set(range(len(ours))) - {i for i, _ in pairs}
    unmatched_ours = set(range(len(ours))) - {j for _, j in pairs}
    assert all(expected["scores"][i] <= cut for i in unmatched_tv), sorted(unmatched_tv)
    assert all(ours.scores[j] <= cut for j in unmatched_ours), sorted(unmatched_ours)
    assert len(pairs) >= 0.95 * len(ours)
    if "masks" in expected:
        assert ours.masks.dtype == torch.bool
        tv_masks = expected["masks"][:, 0] >= 0.5  # detbox binarizes with prob >= mask_thr
        for i, j in pairs:
            inter = (tv_masks[i] & ours.masks[j]).sum().item()
            union = (tv_masks[i] | ours.masks[j]).sum().item()
            assert union == 0 or inter / union >= MIN_MASK_IOU, (i, j, inter, union)


# Detections kept per image (torchvision's defaults are 100 and 300); fewer for Mask R-CNN,
# whose mask head on every detection dominates the run time on a CPU.
@pytest.mark.parametrize(
    ("arch", "names", "max_dets"),
    [
        ("fasterrcnn_resnet50_fpn", IMAGES[:1], 100),
        ("maskrcnn_resnet50_fpn", IMAGES, 30),
        ("retinanet_resnet50_fpn", IMAGES[:1], 300),
    ],
)
def test_converted_model_reproduces_torchvision(arch, names, max_dets):
    expected, ours = _run_both(arch, names, max_dets)
    for exp, res in zip(expected, ours):
        _assert_equivalent(exp, res)


def test_converter_maps_classes_and_rejects_unknown_keys():
    from detbox.errors import CheckpointError

    torch.manual_seed(0)
    tv_model = torchvision.models.detection.fasterrcnn_resnet50_fpn(
        weights=None, weights_backbone=None, num_classes=4
    )
    state = tv_model.state_dict()
    converted = convert_torchvision_state_dict("fasterrcnn_resnet50_fpn", state)
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
        convert_torchvision_state_dict("ssd300_vgg16", state)
