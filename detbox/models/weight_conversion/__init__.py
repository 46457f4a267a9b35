"""Converters from other toolboxes' checkpoints to detbox state dicts."""

from detbox.models.weight_conversion.torchvision import (
    SUPPORTED_ARCHS,
    convert_torchvision_state_dict,
)

__all__ = ["SUPPORTED_ARCHS", "convert_torchvision_state_dict"]
