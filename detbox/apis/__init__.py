"""The Python API: build a detector from a config and a checkpoint, and run it on images."""

from detbox.apis.async_inference import async_inference_detector
from detbox.apis.inference import inference_detector, init_detector, show_result

__all__ = ["async_inference_detector", "inference_detector", "init_detector", "show_result"]
