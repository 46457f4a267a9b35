"""Gradient accumulation, mixed precision and the fp16 loss scaler's skipped steps."""

from __future__ import annotations

import copy

import pytest
import torch
from engine_fakes import FakeDetector, make_loader, read_jsonl

from detbox.engine.amp import AmpSettings, build_amp
from detbox.engine.gradient_stepper import GradientStepper, micro_batch_position
from detbox.errors import ConfigError

SGD = {"type": "SGD", "lr": 0.05, "momentum": 0.9, "weight_decay": 1e-4}
CONSTANT = {"policy": "constant", "warmup": None}


def _fixed_batches(count: int, batch_size: int = 2) -> list:
    """Batches drawn once, so the trainer and the reference see the very same tensors."""
    torch.manual_seed(0)
    return [batch for _, batch in zip(range(count), make_loader(batch_size=batch_size))]


def _deterministic_model() -> FakeDetector:
    torch.manual_seed(0)
    model = FakeDetector()
    model.dropout.p = 0.0
    return model


def _reference_steps(model: FakeDetector, groups: list[list]) -> FakeDetector:
    """Plain PyTorch: one SGD step per group with the mean of its micro-batch gradients."""
    model = copy.deepcopy(model).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=SGD["lr"], momentum=SGD["momentum"],
                                weight_decay=SGD["weight_decay"])
    for group in groups:
        optimizer.zero_grad()
        for batch in group:
            losses = model.loss(batch)
            ((losses["loss_cls"] + losses["loss_bbox"]) / len(group)).backward()
        optimizer.step()
    return model


def test_micro_batch_positions_close_every_group():
    positions = [micro_batch_position(i, 5, 2) for i in range(5)]
    assert positions == [(True, False, 2), (False, True, 2), (True, False, 2), (False, True, 2),
                         (True, True, 1)]
    assert [micro_batch_position(i, 3, 1) for i in range(3)] == [(True, True, 1)] * 3


def test_accumulation_steps_once_per_group_with_the_mean_gradient(tmp_path, make_trainer):
    batches = _fixed_batches(5)  # groups of 2, 2 and a last one of 1
    model = _deterministic_model()
    expected = _reference_steps(model, [batches[0:2], batches[2:4], batches[4:5]])

    trainer = make_trainer(tmp_path, model=model, loader=batches, max_epochs=1,
                           optimizer_cfg=SGD, lr_schedule_cfg=CONSTANT, grad_clip=None,
                           accumulate_steps=2, evaluate_fn=None)
    calls = []
    step = trainer.state.optimizer.step
    trainer.state.optimizer.step = lambda *a, **k: calls.append(1) or step(*a, **k)
    trainer.train()

    assert len(calls) == 3 and trainer.iteration == 3 and trainer.iters_per_epoch == 3
    for name, param in expected.named_parameters():
        assert torch.allclose(trainer.model.get_parameter(name), param, atol=1e-6, rtol=0), name
    steps = [(r["iter"], r["step"]) for r in read_jsonl(tmp_path) if r["mode"] == "train"]
    assert steps == [(1, 1), (2, 2), (3, 3)]


def test_bf16_autocast_on_cpu_trains_the_demo_retinanet(tmp_path, make_trainer):
    from detbox.apis.build import build_detector, fill_num_classes
    from detbox.config import load_config
    from detbox.structures import DetSample, ImageBatch, Instances
    from tests.conftest import REPO_ROOT

    cfg = load_config(REPO_ROOT / "configs/demo/retinanet_r18_fpn_synthetic.py")
    fill_num_classes(cfg, ["a", "b"], source="test")
    torch.manual_seed(0)
    model = build_detector(cfg.model, ["a", "b"], [1, 2])
    images = torch.zeros(2, 3, 64, 64)
    images[0, :, 8:40, 8:40] = 1.0
    images[1, :, 24:56, 16:48] = 1.0
    samples = [DetSample(image_id=i, file_name=f"{i}.png", ori_shape=(64, 64), img_shape=(64, 64),
                         gt=Instances(boxes=torch.tensor([box]), labels=torch.tensor([i])))
               for i, box in enumerate([[8.0, 8, 40, 40], [16.0, 24, 48, 56]])]
    dtypes = []
    model.backbone.register_forward_hook(lambda m, i, out: dtypes.append(out[0].dtype))

    trainer = make_trainer(tmp_path, model=model, loader=[ImageBatch(images, samples)] * 8,
                           max_epochs=1, optimizer_cfg={"type": "AdamW", "lr": 1e-3},
                           lr_schedule_cfg=CONSTANT, evaluate_fn=None, amp={"dtype": "bf16"})
    trainer.train()

    assert dtypes and all(d == torch.bfloat16 for d in dtypes)
    losses = [r["loss"] for r in read_jsonl(tmp_path) if r["mode"] == "train"]
    assert len(losses) == 8 and all(torch.isfinite(torch.tensor(losses)))
    assert sum(losses[-2:]) < 0.8 * sum(losses[:2]), losses
    assert "mixed precision: bf16 autocast on cpu, no loss scaling" in \
        next(tmp_path.glob("*.log")).read_text()


def test_fp16_overflow_skips_the_step_and_is_counted():
    """The GradScaler path (fp16 on CUDA) exercised on the CPU: an overflowing gradient skips
    the step without an error and lowers the scale; the next finite step applies."""
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    amp = AmpSettings(device_type="cpu", dtype=torch.float16, init_scale=1024.0)
    stepper = GradientStepper(loss_module=model, model=model, optimizer=optimizer, amp=amp,
                              grad_clip={"max_norm": 1.0, "norm_type": 2.0})
    before = model.weight.detach().clone()

    stepper.backward(model(torch.full((1, 3), float("inf"))).sum(), group_size=1)
    norm = stepper.clip()
    assert not torch.isfinite(torch.tensor(norm)) and stepper.tolerates_non_finite_gradients()
    assert stepper.step() is False
    assert torch.equal(model.weight, before)
    assert stepper.log_values() == {"loss_scale": 512.0, "skipped_steps": 1.0}

    optimizer.zero_grad()
    stepper.backward(model(torch.ones(1, 3)).sum(), group_size=1)
    stepper.clip()
    assert stepper.step() is True and not torch.equal(model.weight, before)
    restored = GradientStepper(loss_module=model, model=model, optimizer=optimizer, amp=amp)
    restored.load_state_dict(stepper.state_dict())
    assert restored.skipped_steps == 1 and restored.scaler.get_scale() == 512.0


def test_amp_settings_resolve_per_device():
    cpu, cuda = torch.device("cpu"), torch.device("cuda", 0)
    assert build_amp(None, cpu).enabled is False
    assert build_amp(True, cpu).dtype == torch.bfloat16
    assert build_amp({"dtype": "auto"}, cuda).dtype == torch.float16
    assert build_amp({"dtype": "fp16"}, cuda).uses_scaler
    assert build_amp({"dtype": "bf16", "enabled": False}, cpu).enabled is False
    with pytest.raises(ConfigError, match="'fp16' needs a CUDA GPU.*dtype='bf16'"):
        build_amp({"dtype": "fp16"}, cpu)
    with pytest.raises(ConfigError, match="Did you mean 'bf16'"):
        build_amp({"dtype": "bf61"}, cpu)
    with pytest.raises(ConfigError, match="unknown key 'dtyp'.*Did you mean 'dtype'"):
        build_amp({"dtyp": "bf16"}, cpu)


def test_accumulate_steps_must_be_a_positive_integer(tmp_path, make_trainer):
    with pytest.raises(ConfigError, match="accumulate_steps must be an integer >= 1"):
        make_trainer(tmp_path, accumulate_steps=0)
