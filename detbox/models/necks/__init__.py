"""Necks: backbone maps -> the multi-scale maps the heads read."""

from detbox.models.necks.fpn import FPN

__all__ = ["FPN"]
