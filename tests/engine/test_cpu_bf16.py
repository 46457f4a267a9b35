"""bf16 autocast on CPU: the native-instruction check and a two-stage detector training in it."""

from __future__ import annotations

import warnings

import pytest
import torch

import detbox.models  # noqa: F401  (registers the detectors)
from detbox.engine import amp as amp_module
from detbox.engine.amp import AmpSettings, build_amp
from detbox.engine.gradient_stepper import GradientStepper
from detbox.engine.training_step import parse_losses
from tests.models.two_stage._tiny import build, rectangles_batch, tiny_two_stage_cfg


def test_emulated_bf16_warns_and_says_so(monkeypatch):
    cpu = torch.device("cpu")
    monkeypatch.setattr(amp_module, "cpu_has_native_bf16", lambda: False)
    with pytest.warns(UserWarning, match="no native bfloat16 instructions.*slower than float32"):
        settings = build_amp({"dtype": "bf16"}, cpu)
    assert "emulated" in settings.describe()
    monkeypatch.setattr(amp_module, "cpu_has_native_bf16", lambda: True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        settings = build_amp(True, cpu)
        build_amp(None, cpu)  # amp off: nothing to warn about
    assert settings.dtype == torch.bfloat16
    assert settings.describe().endswith("no loss scaling (native bf16 instructions)")


def test_native_bf16_check_agrees_with_the_cpu_flags():
    amp_module.cpu_has_native_bf16.cache_clear()
    try:
        flags = open("/proc/cpuinfo").read()
    except OSError:
        pytest.skip("no /proc/cpuinfo to compare with")
    expected = "avx512_bf16" in flags or "amx_bf16" in flags
    assert amp_module.cpu_has_native_bf16() == expected


def test_faster_rcnn_with_frozen_bn_trains_under_cpu_bf16_autocast():
    cfg = tiny_two_stage_cfg("faster")
    cfg["backbone"].update(norm="FrozenBN", frozen_stages=1, norm_eval=True)
    model = build(cfg).train()
    batch = rectangles_batch()
    settings = AmpSettings("cpu", torch.bfloat16)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=0.01, momentum=0.9)
    stepper = GradientStepper(loss_module=model, model=model, optimizer=optimizer, amp=settings)
    feature_dtypes = []
    model.neck.register_forward_hook(lambda m, i, out: feature_dtypes.append(out[0].dtype))
    history = []
    for _ in range(4):
        optimizer.zero_grad(set_to_none=True)
        with settings.autocast():
            losses = model.loss(batch)
        total, names, values = parse_losses(losses, torch.device("cpu"))
        history.append(dict(zip(names, values.tolist())))
        stepper.backward(total, 1)
        assert all(torch.isfinite(p.grad).all() for p in params if p.grad is not None)
        stepper.step()
    assert feature_dtypes and all(d == torch.bfloat16 for d in feature_dtypes)
    assert set(history[0]) >= {"loss_rpn_cls", "loss_rpn_bbox", "loss_cls", "loss_bbox"}
    assert all(torch.isfinite(torch.tensor(list(h.values()))).all() for h in history)
    assert all(p.dtype == torch.float32 for p in params)  # autocast leaves weights in fp32
