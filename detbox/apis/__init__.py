"""The Python API: build a detector from a config and a checkpoint, and run it on images."""

from detbox.apis.async_inference import async_inference_detector
from detbox.apis.inference import (
    Prediction,
    inference_detector,
    inference_with_images,
    init_detector,
    iter_predictions,
    show_result,
)

__all__ = [
    "Prediction",
    "async_inference_detector",
    "inference_detector",
    "inference_with_images",
    "init_detector",
    "iter_predictions",
    "show_result",
]
