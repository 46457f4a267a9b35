"""Tiny models and samples shared by the model tests."""

from __future__ import annotations

import torch

from detbox.structures import DetSample, ImageBatch, Instances


def make_sample(
    boxes: list[list[float]] | None = None,
    labels: list[int] | None = None,
    img_shape: tuple[int, int] = (64, 64),
    ignored: list[list[float]] | None = None,
    **kwargs,
) -> DetSample:
    """A DetSample whose GT is in ``img_shape`` coordinates (no GT when ``boxes`` is None)."""
    gt = Instances.empty()
    if boxes:
        gt = Instances(boxes=torch.tensor(boxes, dtype=torch.float32),
                       labels=torch.tensor(labels, dtype=torch.int64))
    kwargs.setdefault("ori_shape", img_shape)
    return DetSample(
        image_id=0, file_name="synthetic.png", img_shape=img_shape, gt=gt,
        ignored_boxes=torch.tensor(ignored or [], dtype=torch.float32).reshape(-1, 4), **kwargs,
    )


def tiny_retina_head_cfg(num_classes: int = 2, in_channels: int = 8, **overrides) -> dict:
    cfg = {
        "type": "RetinaHead", "num_classes": num_classes, "in_channels": in_channels,
        "feat_channels": 8, "stacked_convs": 1,
        "anchor_generator": {"type": "AnchorGenerator", "strides": [8, 16, 32]},
    }
    cfg.update(overrides)
    return cfg


def tiny_retinanet_cfg(num_classes: int = 2) -> dict:
    return {
        "type": "RetinaNet",
        "backbone": {"type": "ResNet", "depth": 18, "out_indices": (1, 2, 3),
                     "frozen_stages": -1, "norm": "GN", "norm_eval": False},
        "neck": {"type": "FPN", "in_channels": [128, 256, 512], "out_channels": 32,
                 "num_outs": 5, "extra_convs": "input"},
        "bbox_head": {"type": "RetinaHead", "num_classes": num_classes, "in_channels": 32,
                      "feat_channels": 32, "stacked_convs": 1},
    }


def rectangle_image(box: tuple[int, int, int, int], size: int = 64) -> torch.Tensor:
    """(1, 3, size, size) image, 0 everywhere but 1 inside ``box = (x1, y1, x2, y2)``."""
    image = torch.zeros(1, 3, size, size)
    x1, y1, x2, y2 = box
    image[:, :, y1:y2, x1:x2] = 1.0
    return image


def rectangle_batch(box: tuple[int, int, int, int], label: int = 1) -> ImageBatch:
    """A 64 x 64 image with one bright rectangle at ``box`` and that box as its GT."""
    return ImageBatch(images=rectangle_image(box),
                      samples=[make_sample([[float(v) for v in box]], [label])])


def sgd_losses(model: torch.nn.Module, batch: ImageBatch, *, steps: int, lr: float,
               clip: float | None = None) -> list[float]:
    """The total loss of each of ``steps`` SGD steps (momentum 0.9) of ``model`` on ``batch``."""
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    totals = []
    for _ in range(steps):
        total = sum(model.loss(batch).values())
        optimizer.zero_grad()
        total.backward()
        if clip is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        optimizer.step()
        totals.append(total.item())
    return totals


def assert_predicts_inside_an_empty_image(model: torch.nn.Module, size: int = 64) -> None:
    """In eval mode, ``model`` predicts on a black image: boxes (N, 4) inside the image."""
    with torch.no_grad():
        (result,) = model.eval().predict(ImageBatch(images=torch.zeros(1, 3, size, size),
                                                    samples=[make_sample()]))
    assert result.boxes.shape == (len(result), 4)
    assert ((result.boxes >= 0) & (result.boxes <= size)).all()
