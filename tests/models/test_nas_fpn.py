"""NAS-FPN: shapes and strides, the merging cells against references, gradients, a tiny
RetinaNet, and the crop-640 recipe."""

from __future__ import annotations

import math
import random
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from detbox.config import load_config
from detbox.data.transforms.compose import Compose
from detbox.errors import ConfigError
from detbox.models.necks import NASFPN
from detbox.models.necks.nas_fpn import MergingCell, resize_to
from detbox.registry import MODELS
from detbox.structures import ImageBatch

from ._helpers import make_sample, rectangle_image, tiny_retinanet_cfg

RECIPE = (Path(__file__).resolve().parents[2]
          / "configs/nas_fpn/retinanet_r50_nasfpn_crop640_50e_coco.py")


def c2_c5(size: int = 64, batch: int = 2) -> list[torch.Tensor]:
    """C2..C5 maps of a ``size`` x ``size`` image (strides 4..32)."""
    torch.manual_seed(0)
    return [torch.randn(batch, c, math.ceil(size / s), math.ceil(size / s))
            for c, s in ((8, 4), (16, 8), (24, 16), (32, 32))]


@pytest.mark.parametrize("size", [64, 100])
def test_output_shapes_and_strides(size):
    neck = NASFPN(in_channels=[8, 16, 24, 32], out_channels=16, stack_times=2, start_level=1,
                  norm=None)
    outs = neck(c2_c5(size))
    assert len(outs) == 5
    expected = []
    side = math.ceil(size / 8)  # P3 is C3's size, each next level half of the previous
    for _ in range(5):
        expected.append((2, 16, side, side))
        side = math.ceil(side / 2)
    assert [tuple(o.shape) for o in outs] == expected


def test_stack_times_repeats_the_seven_cell_stage_with_its_own_weights():
    neck = NASFPN(in_channels=[8, 16, 24, 32], out_channels=16, stack_times=3, start_level=1)
    assert len(neck.stages) == 3 and neck.stages[0] is not neck.stages[1]
    convs = [name for name, cell in neck.stages[0].items() if cell.out_conv is not None]
    assert len(neck.stages[0]) == 9 and len(convs) == 7  # 7 output cells + 2 attention-only
    assert isinstance(neck.stages[0]["gp_64_4"].out_conv[1][1], torch.nn.BatchNorm2d)
    assert len(neck.lateral_convs) == 3 and len(neck.extra_convs) == 2


def _reference_global_pool(a, b):
    """Per image and channel: b + sigmoid(mean over the positions of b) * a."""
    out = torch.empty_like(b)
    for i in range(b.shape[0]):
        for c in range(b.shape[1]):
            weight = 1.0 / (1.0 + math.exp(-float(b[i, c].sum()) / b[i, c].numel()))
            out[i, c] = b[i, c] + weight * a[i, c]
    return out


def test_global_pooling_cell_against_reference():
    torch.manual_seed(0)
    cell = MergingCell(channels=4, op="global_pool", with_out_conv=False)
    a, b = torch.randn(2, 4, 8, 8), torch.randn(2, 4, 4, 4)
    # a is max-pooled 2x2 onto b's size
    expected = _reference_global_pool(F.max_pool2d(a, 2), b)
    torch.testing.assert_close(cell(a, b, (4, 4)), expected)
    # the other way round: b nearest-upsampled onto a's size
    expected = _reference_global_pool(a, b.repeat_interleave(2, 2).repeat_interleave(2, 3))
    torch.testing.assert_close(cell(a, b, (8, 8)), expected)


def test_sum_cell_with_output_conv_is_relu_conv_norm_of_the_sum():
    torch.manual_seed(0)
    cell = MergingCell(channels=4, op="sum", norm=None)
    a, b = torch.randn(1, 4, 6, 6), torch.randn(1, 4, 3, 3)
    conv = cell.out_conv[1]
    expected = conv(F.relu(resize_to(a, (3, 3)) + b))
    torch.testing.assert_close(cell(a, b, (3, 3)), expected)


def test_resize_handles_odd_sizes():
    x = torch.arange(25.0).reshape(1, 1, 5, 5)
    assert resize_to(x, (3, 3)).shape[-2:] == (3, 3)
    assert resize_to(x, (3, 3))[0, 0, 0, 0] == 6.0  # max of the top-left 2x2 window
    assert resize_to(x[..., :3, :3], (5, 5)).shape[-2:] == (5, 5)


def test_gradient_reaches_every_parameter():
    neck = NASFPN(in_channels=[8, 16, 24, 32], out_channels=16, stack_times=2, start_level=1)
    feats = [f.requires_grad_() for f in c2_c5()]
    sum(o.square().mean() for o in neck(feats)).backward()
    missing = [n for n, p in neck.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
    assert not missing
    assert feats[0].grad is None  # C2 is below start_level
    assert all(f.grad.abs().sum() > 0 for f in feats[1:])


@pytest.mark.parametrize("cfg, match", [
    ({"num_outs": 4}, "num_outs"),
    ({"start_level": 4}, "start_level"),
    ({"stack_time": 2}, "stack_times"),
])
def test_config_errors_are_clear(cfg, match):
    with pytest.raises(ConfigError, match=match):
        MODELS.build({"type": "NASFPN", "in_channels": [8, 16, 24, 32], **cfg})


def test_tiny_retinanet_with_nasfpn_trains_and_predicts_on_an_empty_image():
    cfg = tiny_retinanet_cfg(num_classes=2)
    cfg["backbone"]["out_indices"] = (0, 1, 2, 3)
    cfg["neck"] = {"type": "NASFPN", "out_channels": 32, "stack_times": 2, "start_level": 1}
    torch.manual_seed(0)
    model = MODELS.build(cfg)
    assert model.neck.in_channels == [64, 128, 256, 512]  # filled from the backbone
    batch = ImageBatch(images=rectangle_image((8, 12, 40, 44)).repeat(2, 1, 1, 1),
                       samples=[make_sample([[8, 12, 40, 44]], [1]) for _ in range(2)])
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    before = model.neck.stages[1]["sum_43_3"].out_conv[1][0].weight.clone()
    model.train()
    for _ in range(3):
        losses = model.loss(batch)
        assert all(torch.isfinite(v) for v in losses.values())
        optimizer.zero_grad()
        sum(losses.values()).backward()
        optimizer.step()
    assert not torch.equal(model.neck.stages[1]["sum_43_3"].out_conv[1][0].weight, before)
    model.eval()
    empty = ImageBatch(images=torch.zeros(1, 3, 64, 64), samples=[make_sample()])
    with torch.no_grad():
        (result,) = model.predict(empty)
    assert result.boxes.shape[1] == 4


def test_recipe_is_the_papers_r50_model_and_crop_640_schedule():
    cfg = load_config(RECIPE)
    neck = cfg["model"]["neck"]
    assert neck["type"] == "NASFPN" and neck["start_level"] == 1
    assert cfg["model"]["backbone"]["norm"] == "BN" and not cfg["model"]["backbone"]["norm_eval"]
    assert cfg["train_cfg"]["max_epochs"] == 50
    types = [t["type"] for t in cfg["train_dataloader"]["dataset"]["pipeline"]]
    assert types.index("RandomResize") < types.index("RandomCrop")
    resize = cfg["train_dataloader"]["dataset"]["pipeline"][types.index("RandomResize")]
    assert tuple(resize["ratio_range"]) == (0.8, 1.2) and tuple(resize["scale"]) == (640, 640)
    model = MODELS.build({**neck, "in_channels": [256, 512, 1024, 2048]})
    assert len(model.stages) == 7 and model.out_channels == 256  # the paper's R-50 model
    assert isinstance(model.lateral_convs[0][1], torch.nn.BatchNorm2d)


def test_recipe_train_pipeline_crops_jittered_images_to_640():
    cfg = load_config(RECIPE)
    steps = [t for t in cfg["train_dataloader"]["dataset"]["pipeline"]
             if t["type"] not in ("LoadImage", "LoadAnnotations", "PackDetInputs")]
    pipeline = Compose(steps)
    random.seed(0)
    image = torch.full((3, 600, 1000), 10, dtype=torch.uint8)
    image[:, 100:300, 200:500] = 200
    sizes = set()
    for _ in range(6):
        out = pipeline({
            "img": image.clone(), "image_id": 1, "file_name": "x.png", "img_path": "x.png",
            "ori_shape": (600, 1000), "img_shape": (600, 1000), "scale_factor": (1.0, 1.0),
            "flip": None, "gt_boxes": torch.tensor([[200.0, 100.0, 500.0, 300.0]]),
            "gt_labels": torch.tensor([0]), "ignored_boxes": torch.zeros(0, 4)})
        height, width = out["img"].shape[-2:]
        assert height <= 640 and width <= 640 and out["img"].dtype == torch.float32
        sizes.add((height, width))
    assert len(sizes) > 1  # the scale jitter changes the size from image to image

