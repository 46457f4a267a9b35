"""FLOPs counting: analytic values on small modules, per-module sums, uncounted ops."""

import pytest
import torch
from torch import nn

from detbox.deploy.flops import count_flops, format_flops_report, human


def test_single_conv_matches_the_formula():
    conv = nn.Conv2d(3, 8, kernel_size=3, padding=1)
    report = count_flops(conv, torch.zeros(1, 3, 16, 16))
    # 2 FLOPs per multiply-add: out channels x in channels x k*k x output pixels.
    assert report.total_flops == 2 * 8 * 3 * 9 * 16 * 16
    assert report.total_params == 8 * 3 * 9 + 8
    assert report.flops_by_op == {"aten.convolution": report.total_flops}
    assert report.input_shape == (1, 3, 16, 16)


class _ListNet(nn.Module):
    """Children in a ModuleList that is never called itself, then a linear layer."""

    def __init__(self) -> None:
        super().__init__()
        self.convs = nn.ModuleList([nn.Conv2d(2, 4, 1), nn.Conv2d(4, 4, 1, bias=False)])
        self.fc = nn.Linear(4 * 5 * 5, 10)

    def forward(self, x):
        for conv in self.convs:
            x = torch.relu(conv(x))
        return self.fc(x.flatten(1))


def test_per_module_costs_add_up_and_uncounted_ops_are_listed():
    report = count_flops(_ListNet(), torch.zeros(2, 2, 5, 5))
    costs = {c.name: c for c in report.modules}
    conv0, conv1 = 2 * 2 * 4 * 1 * 25 * 2, 2 * 4 * 4 * 1 * 25 * 2
    fc = 2 * 2 * 100 * 10
    assert costs["convs.0"].flops == conv0 and costs["convs.1"].flops == conv1
    assert costs["convs"].flops == conv0 + conv1  # summed from its children
    assert costs["fc"].flops == fc and costs["fc"].params == 100 * 10 + 10
    assert costs[""].flops == report.total_flops == conv0 + conv1 + fc
    assert report.uncounted_ops.get("aten.relu") == 2
    assert "aten.view" not in report.uncounted_ops  # shape-only ops are not listed
    text = format_flops_report(report, depth=1)
    assert "convs" in text and "not counted (no FLOP formula): aten.relu x2" in text


def test_human_units():
    assert human(1_234_000_000, "FLOPs") == "1.23 GFLOPs"
    assert human(999) == "999"


def test_fast_path_kernels_are_counted_like_the_plain_ops():
    from detbox.models.inference_mode import prepare_for_inference
    from detbox.registry import MODELS

    torch.manual_seed(0)
    backbone = MODELS.build({"type": "ResNet", "depth": 18, "out_indices": (0, 1, 2, 3),
                             "frozen_stages": -1})
    neck = MODELS.build({"type": "FPN", "in_channels": [64, 128, 256, 512], "out_channels": 16,
                         "num_outs": 5})
    head = nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 3))

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.backbone, self.neck, self.head = backbone, neck, head

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(self.neck(self.backbone(x))[-1])

    x = torch.randn(1, 3, 64, 64)
    with torch.backends.mkldnn.flags(enabled=False):  # plain aten kernels only
        reference = count_flops(Net().eval(), x)
    fast = count_flops(prepare_for_inference(Net()), x)
    assert any(op.startswith("mkldnn.") for op in fast.flops_by_op)
    assert not any(op.startswith("mkldnn.") for op in reference.flops_by_op)
    assert reference.total_flops > 0
    assert fast.total_flops == reference.total_flops
    if torch.backends.nnpack.is_available():  # the one-thread Winograd convs, forced on
        from detbox.models import winograd_conv

        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            with pytest.MonkeyPatch.context() as patch:
                patch.setattr(winograd_conv, "MIN_CHANNELS", 1)
                patch.setattr(winograd_conv, "MIN_PIXELS", 1)
                winograd = count_flops(prepare_for_inference(Net()), x)
        finally:
            torch.set_num_threads(threads)
        assert winograd.flops_by_op.get("aten._nnpack_spatial_convolution", 0) > 0
        assert winograd.total_flops == reference.total_flops
