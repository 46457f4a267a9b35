"""Training from random weights with frozen backbone parts warns, naming the parts and the fix."""

from __future__ import annotations

import warnings

import pytest

from detbox.models.backbones import ResNet
from detbox.models.detectors.base import frozen_without_weights
from detbox.registry import MODELS
from tests.models._helpers import tiny_retinanet_cfg


def test_resnet_reports_what_stays_fixed():
    assert ResNet(depth=18).frozen_parts() == [
        "the stem and stage 1 (frozen_stages=1)", "every norm layer (norm='FrozenBN')"]
    assert ResNet(depth=18, frozen_stages=2, norm="BN").frozen_parts() == [
        "the stem and stages 1, 2 (frozen_stages=2)", "the BN statistics (norm_eval=True)"]
    assert ResNet(depth=18, frozen_stages=0, norm="GN").frozen_parts() == [
        "the stem (frozen_stages=0)"]
    assert ResNet(depth=18, frozen_stages=-1, norm="BN", norm_eval=False).frozen_parts() == []
    assert ResNet(depth=18, frozen_stages=-1, norm="GN").frozen_parts() == []


def test_init_weights_without_a_checkpoint_warns_about_frozen_parts():
    cfg = tiny_retinanet_cfg()
    cfg["backbone"] = {"type": "ResNet", "depth": 18, "out_indices": (1, 2, 3)}
    model = MODELS.build(cfg)
    with pytest.warns(UserWarning) as record:
        assert model.init_weights() is None
    message = str(record[0].message)
    assert "random weights" in message and "frozen_stages=1" in message
    assert "norm='FrozenBN'" in message
    assert "model.init_cfg=dict(backbone_checkpoint='torchvision://resnet18')" in message
    assert "frozen_stages=-1" in message and "norm='BN'" in message and "'GN'" in message


def test_a_backbone_trained_from_scratch_does_not_warn():
    model = MODELS.build(tiny_retinanet_cfg())  # frozen_stages=-1, GN
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.init_weights()
    assert frozen_without_weights(ResNet(depth=18, frozen_stages=-1, norm="GN")) is None
