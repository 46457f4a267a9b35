"""Backbones: image (B, 3, H, W) -> list of multi-scale feature maps."""

from detbox.models.backbones.resnet import ResNet, make_resnet_stage, read_torchvision_state_dict

__all__ = ["ResNet", "make_resnet_stage", "read_torchvision_state_dict"]
