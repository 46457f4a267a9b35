"""Backbones: image (B, 3, H, W) -> list of multi-scale feature maps."""

from detbox.models.backbones.hrnet import HRNet
from detbox.models.backbones.resnet import ResNet, make_resnet_stage, read_torchvision_state_dict
from detbox.models.backbones.resnext import ResNeXt
from detbox.models.backbones.ssd_mobilenet import SSDMobileNetV3
from detbox.models.backbones.ssd_vgg import SSDVGG
from detbox.models.backbones.timm_backbone import TimmBackbone
from detbox.models.backbones.torchvision_backbone import TorchvisionBackbone
from detbox.models.backbones.trident_resnet import TridentResNet

__all__ = [
    "SSDVGG",
    "HRNet",
    "ResNeXt",
    "ResNet",
    "SSDMobileNetV3",
    "TimmBackbone",
    "TorchvisionBackbone",
    "TridentResNet",
    "make_resnet_stage",
    "read_torchvision_state_dict",
]
