"""The CPU training fast path: channels-last weights and oneDNN GEMMs, same training."""

from __future__ import annotations

import copy

import pytest
import torch
from engine_fakes import read_jsonl
from torch import nn
from torchvision.models.resnet import Bottleneck
from torchvision.ops.misc import FrozenBatchNorm2d

from detbox.engine.cpu_training import prepare_cpu_training
from detbox.models.fused_conv import OneDNNConv2d, OneDNNLinear
from detbox.models.layers.frozen_bn_conv import folded_block_forward

needs_onednn = pytest.mark.skipif(not torch.backends.mkldnn.is_available(),
                                  reason="oneDNN is not built into this PyTorch")


def _frozen_bottleneck() -> Bottleneck:
    torch.manual_seed(0)
    block = Bottleneck(16, 4, norm_layer=FrozenBatchNorm2d)
    for norm in (block.bn1, block.bn2, block.bn3):
        norm.weight.uniform_(0.5, 1.5)
        norm.running_var.uniform_(0.5, 2.0)
        norm.running_mean.normal_()
    return block


@needs_onednn
def test_a_frozen_bn_bottleneck_trains_alike_on_the_fast_path(single_thread):
    # one thread: the 1x1 convolutions take oneDNN's differentiable GEMM, not PyTorch's BLAS
    plain = _frozen_bottleneck()
    fast = copy.deepcopy(plain)
    note = prepare_cpu_training(fast, torch.device("cpu"))
    assert "3 convolution / linear layers on oneDNN" in note and "channels-last" in note
    assert type(fast.conv1) is OneDNNConv2d
    assert fast.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    x = torch.randn(2, 16, 9, 7)
    outputs = []
    for block in (plain, fast):  # the folded forward passes its own (scaled) weights
        out = folded_block_forward(block, x)
        out.square().sum().backward()
        outputs.append(out.detach())
    assert outputs[1].is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(outputs[1], outputs[0], rtol=1e-5, atol=1e-5)
    for (name, ref), got in zip(plain.named_parameters(), fast.parameters()):
        torch.testing.assert_close(got.grad, ref.grad, rtol=1e-4, atol=1e-4, msg=name)
    assert list(fast.state_dict()) == list(plain.state_dict())


def test_nothing_changes_on_a_gpu_device_or_when_turned_off():
    model = nn.Sequential(nn.Conv2d(3, 4, 1), nn.Flatten(), nn.Linear(4, 2))
    assert prepare_cpu_training(model, torch.device("cpu"), enabled=False) is None
    assert prepare_cpu_training(model, torch.device("cuda"), enabled=True) is None
    assert [type(m) for m in model] == [nn.Conv2d, nn.Flatten, nn.Linear]


@needs_onednn
@pytest.mark.parametrize("fast", [True, False])
def test_the_trainer_sets_the_fast_path_up_and_logs_it(tmp_path, make_trainer, fast):
    trainer = make_trainer(tmp_path, max_epochs=1, cpu_fast_path=fast)
    classes = {type(m) for m in trainer.model.modules()}
    assert (OneDNNLinear in classes) is fast and (nn.Linear in classes) is not fast
    trainer.train()
    text = next(tmp_path.glob("*.log")).read_text()
    assert ("CPU fast path: channels-last maps" in text) is fast
    losses = [r["loss"] for r in read_jsonl(tmp_path) if r["mode"] == "train"]
    assert losses and all(torch.isfinite(torch.tensor(losses)))
