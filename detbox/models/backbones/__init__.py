"""Backbones: image (B, 3, H, W) -> list of multi-scale feature maps."""

from detbox.models.backbones.resnet import ResNet, make_resnet_stage, read_torchvision_state_dict
from detbox.models.backbones.ssd_mobilenet import SSDMobileNetV3
from detbox.models.backbones.ssd_vgg import SSDVGG

__all__ = ["ResNet", "SSDMobileNetV3", "SSDVGG", "make_resnet_stage", "read_torchvision_state_dict"]
