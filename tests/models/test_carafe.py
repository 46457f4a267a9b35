"""CARAFE upsampling: against a loop reference, its uniform-kernel limit, and inside an FPN."""

import pytest
import torch
import torch.nn.functional as F

from detbox.errors import ConfigError
from detbox.models.layers import CARAFE
from detbox.models.necks import FPN
from tests.models.two_stage._tiny import build, rectangles_batch, tiny_two_stage_cfg, train_steps


def loop_reference(x: torch.Tensor, carafe: CARAFE) -> torch.Tensor:
    """Output pixel by output pixel, as the paper writes it."""
    b, c, h, w = x.shape
    s, k = carafe.scale, carafe.k_up
    logits = carafe.encoder(carafe.compressor(x))  # (B, k*k*s*s, H, W)
    kernels = F.pixel_shuffle(logits, s).softmax(dim=1)  # (B, k*k, sH, sW)
    padded = F.pad(x, (k // 2,) * 4)
    out = torch.zeros(b, c, s * h, s * w)
    for oi in range(s * h):
        for oj in range(s * w):
            i, j = oi // s, oj // s
            patch = padded[:, :, i:i + k, j:j + k].reshape(b, c, k * k)
            out[:, :, oi, oj] = (patch * kernels[:, None, :, oi, oj]).sum(-1)
    return out


def test_output_shape_and_golden_against_the_loop():
    torch.manual_seed(0)
    carafe = CARAFE(channels=3, compressed_channels=4)
    torch.nn.init.normal_(carafe.encoder.weight, std=0.5)  # far from uniform kernels
    x = torch.randn(2, 3, 4, 5)
    out = carafe(x)
    assert out.shape == (2, 3, 8, 10)
    assert torch.allclose(out, loop_reference(x, carafe), atol=1e-5)
    assert not torch.allclose(out, F.interpolate(x, scale_factor=2, mode="nearest"), atol=1e-2)


def test_uniform_kernels_give_the_neighbourhood_mean():
    carafe = CARAFE(channels=3, compressed_channels=4, k_up=3)
    torch.nn.init.zeros_(carafe.encoder.weight)
    x = torch.randn(1, 3, 6, 7)
    out = carafe(x)
    # softmax of equal logits: 1/k^2 each, a zero-padded 3x3 mean copied to the 2x2 sub-pixels
    mean = F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=True)
    assert torch.allclose(out, F.interpolate(mean, scale_factor=2, mode="nearest"), atol=1e-6)
    # so a constant map is nearest-upsampled away from the zero-padded border
    const = carafe(torch.full((1, 3, 6, 7), 2.0))
    assert torch.allclose(const[..., 2:-2, 2:-2], torch.full_like(const[..., 2:-2, 2:-2], 2.0))
    assert const[0, 0, 0, 0] < 2.0


def test_gradient_reaches_the_kernel_predictor_and_the_input():
    carafe = CARAFE(channels=4, compressed_channels=4)
    x = torch.randn(1, 4, 5, 5, requires_grad=True)
    (carafe(x) * torch.randn(1, 4, 10, 10)).sum().backward()
    assert x.grad.abs().sum() > 0
    assert carafe.encoder.weight.grad.abs().sum() > 0
    assert carafe.compressor.weight.grad.abs().sum() > 0


def test_config_errors():
    with pytest.raises(ConfigError, match="odd"):
        CARAFE(channels=4, k_up=4)
    with pytest.raises(ConfigError, match="upsample_cfg"):
        FPN(in_channels=[8, 16], upsample_cfg={"type": "bilinear"})
    with pytest.raises(ConfigError, match="k_up"):
        FPN(in_channels=[8, 16], upsample_cfg={"type": "carafe", "kup": 3})


def test_fpn_with_carafe_on_odd_sizes():
    fpn = FPN(in_channels=[16, 32, 64], out_channels=8, num_outs=5,
              upsample_cfg={"type": "carafe", "compressed_channels": 8})
    assert len(fpn.upsamplers) == 2
    feats = [torch.randn(2, 16, 25, 33), torch.randn(2, 32, 13, 17), torch.randn(2, 64, 7, 9)]
    outs = fpn(feats)
    assert [tuple(o.shape[-2:]) for o in outs] == [(25, 33), (13, 17), (7, 9), (4, 5), (2, 3)]
    # The top-down step uses the CARAFE of that level: changing it changes the finer outputs only.
    with torch.no_grad():
        fpn.upsamplers[0].encoder.weight.normal_()
    changed = fpn(feats)
    assert not torch.allclose(changed[0], outs[0]) and torch.allclose(changed[1], outs[1])


def test_tiny_faster_rcnn_with_carafe_fpn_trains():
    cfg = tiny_two_stage_cfg("faster")
    cfg["neck"]["upsample_cfg"] = {"type": "carafe", "compressed_channels": 8}
    model = build(cfg)
    batch = rectangles_batch(scale=0.5)
    history = train_steps(model, batch, steps=8)
    assert all(torch.isfinite(torch.tensor(list(h.values()))).all() for h in history)
    total = [sum(h.values()) for h in history]
    assert min(total[-3:]) < 0.85 * total[0], history
    model.eval()
    with torch.no_grad():
        empty = model.predict(type(batch)(images=torch.zeros(1, 3, 64, 64),
                                          samples=batch.samples[:1]))
    assert len(empty) == 1 and empty[0].boxes.shape[1] == 4
