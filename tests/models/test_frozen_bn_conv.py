import pytest
import torch
from torch import nn
from torchvision.models.resnet import BasicBlock, Bottleneck

from detbox.models.layers.frozen_bn_conv import conv_frozen_bn, folded_block_forward
from detbox.models.layers.norm import FrozenBatchNorm2d


def random_frozen_bn(channels: int, seed: int) -> FrozenBatchNorm2d:
    gen = torch.Generator().manual_seed(seed)
    norm = FrozenBatchNorm2d(channels)
    norm.weight.copy_(torch.rand(channels, generator=gen) + 0.5)
    norm.bias.copy_(torch.randn(channels, generator=gen))
    norm.running_mean.copy_(torch.randn(channels, generator=gen))
    norm.running_var.copy_(torch.rand(channels, generator=gen) + 0.2)
    return norm


def randomize_norms(module: nn.Module) -> nn.Module:
    for i, (name, child) in enumerate(list(module.named_modules())):
        if isinstance(child, FrozenBatchNorm2d):
            parent = module.get_submodule(name.rpartition(".")[0]) if "." in name else module
            setattr(parent, name.rpartition(".")[2], random_frozen_bn(child.weight.numel(), i))
    return module


@pytest.mark.parametrize("bias", [False, True])
def test_conv_frozen_bn_equals_norm_after_conv_with_gradients(bias):
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 6, 3, stride=2, padding=1, bias=bias)
    norm = random_frozen_bn(6, 1)
    x = torch.randn(2, 3, 9, 11, requires_grad=True)
    expected = norm(conv(x))
    expected_grads = torch.autograd.grad(expected.square().sum(), [x, *conv.parameters()])
    out = conv_frozen_bn(conv, norm, x)
    grads = torch.autograd.grad(out.square().sum(), [x, *conv.parameters()])
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
    for grad, ref in zip(grads, expected_grads):
        torch.testing.assert_close(grad, ref, rtol=1e-4, atol=1e-4)


def test_other_norms_run_as_they_are():
    conv = nn.Conv2d(3, 8, 1)
    x = torch.randn(1, 3, 4, 4)
    for norm in (nn.GroupNorm(2, 8), nn.Identity(), nn.BatchNorm2d(8).train()):
        torch.testing.assert_close(conv_frozen_bn(conv, norm, x), norm(conv(x)))


@pytest.mark.parametrize("block_type, stride", [(Bottleneck, 2), (Bottleneck, 1),
                                                (BasicBlock, 2)])
def test_folded_block_equals_the_torchvision_block(block_type, stride):
    torch.manual_seed(0)
    width = 16 * block_type.expansion
    downsample = nn.Sequential(nn.Conv2d(8, width, 1, stride=stride, bias=False),
                               FrozenBatchNorm2d(width))
    block = randomize_norms(block_type(8, 16, stride=stride, downsample=downsample,
                                       norm_layer=FrozenBatchNorm2d))
    x = torch.randn(2, 8, 10, 12, requires_grad=True)
    expected = block(x)
    expected_grads = torch.autograd.grad(expected.sum(), [x, *block.parameters()])
    out = folded_block_forward(block, x)
    grads = torch.autograd.grad(out.sum(), [x, *block.parameters()])
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
    for grad, ref in zip(grads, expected_grads):
        torch.testing.assert_close(grad, ref, rtol=1e-4, atol=1e-4)


def test_unknown_blocks_are_called():
    block = nn.Sequential(nn.Conv2d(4, 4, 1), nn.ReLU())
    x = torch.randn(1, 4, 3, 3)
    torch.testing.assert_close(folded_block_forward(block, x), block(x))
