"""detbox: a config-driven object detection and instance segmentation toolbox."""

__version__ = "0.1.0"
